"""A Triton Inference Server model repository for the exported generator.

Layout (what ``tritonserver --model-repository models/triton`` expects)::

    models/triton/<name>/config.pbtxt
    models/triton/<name>/1/model.onnx

``config.pbtxt`` is written from the ONNX file's own graph (input/output names, element types,
shapes without the batch axis), so it cannot drift from the model; the batch axis becomes
``max_batch_size`` and Triton's dynamic batcher gathers requests like ``ganops serve`` does.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ganops.errors import ExportError
from ganops.files import atomic_path

MODEL_NAME = "ganops-generator"
MAX_BATCH_SIZE = 256
PREFERRED_BATCH_SIZES = (16, 64, 256)
MAX_QUEUE_DELAY_US = 2000  # the same few-ms window as `ganops serve --batch-delay-ms 2`

# ONNX TensorProto element types -> Triton's data_type names
_TRITON_TYPES = {
    1: "TYPE_FP32",
    10: "TYPE_FP16",
    11: "TYPE_FP64",
    6: "TYPE_INT32",
    7: "TYPE_INT64",
    9: "TYPE_BOOL",
}


def _tensors(values, kind: str) -> list[tuple[str, str, list[int]]]:
    """(name, Triton type, dims without the batch axis) for each graph input or output."""
    out = []
    for value in values:
        tensor = value.type.tensor_type
        dims = tensor.shape.dim
        if not dims or dims[0].dim_value:
            raise ExportError(f"{kind} {value.name!r}: first axis must be the dynamic batch axis for Triton")
        rest = [d.dim_value if d.HasField("dim_value") else -1 for d in dims[1:]]
        if tensor.elem_type not in _TRITON_TYPES:
            raise ExportError(
                f"{kind} {value.name!r}: ONNX element type {tensor.elem_type} has no Triton type"
            )
        out.append((value.name, _TRITON_TYPES[tensor.elem_type], rest))
    return out


def _block(kind: str, tensors: list[tuple[str, str, list[int]]]) -> str:
    entries = ",\n".join(
        f'  {{\n    name: "{name}"\n    data_type: {dtype}\n    dims: [ {", ".join(map(str, dims))} ]\n  }}'
        for name, dtype, dims in tensors
    )
    return f"{kind} [\n{entries}\n]\n"


def config_pbtxt(onnx_path: Path, name: str = MODEL_NAME, max_batch_size: int = MAX_BATCH_SIZE) -> str:
    import onnx

    graph = onnx.load_model(str(onnx_path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    inputs = _tensors([i for i in graph.input if i.name not in initializers], "input")
    outputs = _tensors(graph.output, "output")
    preferred = ", ".join(str(b) for b in PREFERRED_BATCH_SIZES if b <= max_batch_size)
    return (
        f'name: "{name}"\n'
        'platform: "onnxruntime_onnx"\n'
        f"max_batch_size: {max_batch_size}\n"
        + _block("input", inputs)
        + _block("output", outputs)
        + "dynamic_batching {\n"
        f"  preferred_batch_size: [ {preferred} ]\n"
        f"  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}\n"
        "}\n"
        "instance_group [\n  {\n    count: 1\n    kind: KIND_AUTO\n  }\n]\n"
    )


def write_repository(onnx_path: Path, repo: Path, name: str = MODEL_NAME) -> Path:
    """Write ``repo/<name>/{config.pbtxt,1/model.onnx}``; returns the model folder."""
    folder = repo / name
    text = config_pbtxt(onnx_path, name)
    with atomic_path(folder / "1" / "model.onnx") as tmp:
        shutil.copyfile(onnx_path, tmp)
    with atomic_path(folder / "config.pbtxt") as tmp:
        tmp.write_text(text)
    return folder
