"""fp16 variant of the exported generator, for GPUs (half the memory traffic, tensor cores).

Inputs and outputs stay float32 (``keep_io_types=True``), so a client and the server feed and
read it exactly like the fp32 file; only the weights and the arithmetic inside are half precision.
Its parity is measured against the fp32 graph on ONNX Runtime's CPU provider.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ganops.errors import ExportError
from ganops.export.onnx_export import INPUT, OUTPUT, ort_session

log = logging.getLogger(__name__)


def convert_fp16(fp32_path: Path, path: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = onnx.load_model(str(fp32_path))
    half = convert_float_to_float16(model, keep_io_types=True)
    _sort_nodes(half.graph)
    # convert_float_to_float16 keeps metadata_props; say which precision this file is.
    entry = half.metadata_props.add()
    entry.key, entry.value = "ganops.precision", "fp16"
    try:
        onnx.checker.check_model(half, full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"the fp16 graph fails onnx.checker ({err})") from None
    onnx.save_model(half, str(path))


def _sort_nodes(graph) -> None:
    """Reorder nodes topologically: the converter appends the input Casts at the end of the
    list, which ONNX Runtime tolerates but onnx.checker (rightly) rejects."""
    available = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        ready = [n for n in pending if all(x in available for x in n.input)]
        if not ready:
            raise ExportError("the fp16 graph has a cycle or a dangling input; export fp32 only")
        for node in ready:
            ordered.append(node)
            available.update(node.output)
        pending = [n for n in pending if n not in ready]
    del graph.node[:]
    graph.node.extend(ordered)


def fp16_parity(fp32_path: Path, fp16_path: Path, latents: np.ndarray) -> float:
    """Max abs difference between the fp16 and fp32 graphs on the same latents (CPU provider)."""
    expected = ort_session(fp32_path).run([OUTPUT], {INPUT: latents})[0]
    got = ort_session(fp16_path).run([OUTPUT], {INPUT: latents})[0]
    if got.dtype != np.float32 or got.shape != expected.shape:
        raise ExportError(f"{fp16_path}: returned {got.dtype} {got.shape}, expected float32 {expected.shape}")
    return float(np.max(np.abs(got - expected)))
