"""ONNX export of the generator with a dynamic batch axis, a parity check and metadata.

The model takes ``z`` (batch, latent_dim) float32 and returns ``images`` (batch, C, H, W)
float32 in [-1, 1]. What a server needs to call it (latent size, image shape, value range)
is stored twice: in the ONNX file's metadata_props and in a sidecar JSON.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from ganops.errors import ExportError
from ganops.models import ArchSpec

log = logging.getLogger(__name__)

INPUT, OUTPUT = "z", "images"


def class_cdf(G: torch.nn.Module) -> list[float] | None:
    """The cumulative class prior a conditional generator reads labels from (``LatentClasses``)."""
    from ganops.models.layers import LatentClasses

    found = [m for m in G.modules() if isinstance(m, LatentClasses)]
    return [float(v) for v in found[0].cdf] if found else None


def model_metadata(spec: ArchSpec, cdf: list[float] | None = None) -> dict[str, str]:
    meta = {
        "ganops.arch": spec.arch,
        "ganops.latent_dim": str(spec.latent_dim),
        "ganops.image_shape": ",".join(map(str, (spec.channels, spec.image_size, spec.image_size))),
        "ganops.value_range": "-1,1",
        "ganops.input": INPUT,
        "ganops.output": OUTPUT,
    }
    if cdf:  # conditional: the class is read from z[:, 0] against this prior (see serve.latents.with_class)
        meta["ganops.num_classes"] = str(len(cdf))
        meta["ganops.class_cdf"] = ",".join(f"{v:.9g}" for v in cdf)
    return meta


def export_onnx(G: torch.nn.Module, spec: ArchSpec, path: Path, opset: int) -> None:
    import onnx

    G = G.cpu().eval()
    example = torch.randn(2, spec.latent_dim)
    program = torch.onnx.export(
        G,
        (example,),
        input_names=[INPUT],
        output_names=[OUTPUT],
        dynamic_shapes={"z": {0: torch.export.Dim("batch")}},
        opset_version=opset,
        dynamo=True,
        external_data=False,
        optimize=True,  # constant folding; folds BatchNorm into the convolutions
    )
    model = program.model_proto
    _drop_stack_traces(model.graph)
    for key, value in model_metadata(spec, class_cdf(G)).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name = "ganops"
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as err:
        raise ExportError(f"the exported graph fails onnx.checker ({err})") from None
    onnx.save_model(model, str(path))


def _drop_stack_traces(graph) -> None:
    """The exporter records each node's Python stack trace, with absolute file paths: the same model
    exported from another checkout would differ in bytes. Drop them; the other node metadata is kept."""
    for node in graph.node:
        kept = [p for p in node.metadata_props if p.key != "pkg.torch.onnx.stack_trace"]
        del node.metadata_props[:]
        node.metadata_props.extend(kept)
        for attribute in node.attribute:
            for subgraph in (attribute.g, *attribute.graphs):
                _drop_stack_traces(subgraph)


def ort_session(path: Path, providers: list[str] | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])


def parity(G: torch.nn.Module, path: Path, latents: torch.Tensor) -> float:
    """Max abs difference between PyTorch and ONNX Runtime (CPU) on the same latents.

    Non-finite outputs are an error, not a difference: NaN compares false with any tolerance."""
    with torch.inference_mode():
        expected = G.cpu().eval()(latents).numpy()
    if bad := _non_finite(expected):
        raise ExportError(
            f"the generator returns {bad} non-finite values (NaN/inf) of {expected.size} on the parity latents: "
            "training diverged; retrain (lower train.lr or another train.loss) before exporting"
        )
    got = ort_session(path).run([OUTPUT], {INPUT: latents.numpy()})[0]
    if got.shape != expected.shape:
        raise ExportError(f"{path}: ONNX Runtime returned shape {got.shape}, PyTorch {expected.shape}")
    if bad := _non_finite(got):
        raise ExportError(
            f"ONNX Runtime returns {bad} non-finite values (NaN/inf) of {got.size} where PyTorch's are finite; "
            "the graph was not written. Try another export.opset"
        )
    return float(np.max(np.abs(got - expected)))


def _non_finite(values: np.ndarray) -> int:
    return int(np.count_nonzero(~np.isfinite(values)))


def sidecar(spec: ArchSpec, path: Path, sha256: str, opset: int, tolerance: float, samples: int) -> dict:
    """The file's contract (what a server needs) and the parity check it passed. The measured
    difference is left out: ONNX Runtime picks its kernels by CPU, so it is a fact of this machine
    (logs/export.json), and this DVC-tracked file must be the same bytes on any machine."""
    return {
        "file": path.name,
        "sha256": sha256,
        "opset": opset,
        "input": {"name": INPUT, "shape": ["batch", spec.latent_dim], "dtype": "float32"},
        "output": {
            "name": OUTPUT,
            "shape": ["batch", spec.channels, spec.image_size, spec.image_size],
            "dtype": "float32",
        },
        "latent_dim": spec.latent_dim,
        "image_shape": [spec.channels, spec.image_size, spec.image_size],
        "value_range": [-1.0, 1.0],
        "arch": spec.to_dict(),
        "parity": {"samples": samples, "tolerance": tolerance, "provider": "CPU", "passed": True},
    }
