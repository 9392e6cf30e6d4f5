"""ONNX export of the generator with dynamic axes, a parity check and metadata.

The sampling generator takes ``z`` (batch, latent_dim) float32 and returns ``images`` (batch, C, H, W)
float32 in [-1, 1]; a restoration generator takes an image of any multiple of its size and returns
``images`` (export.signature: names, shapes and contract per task). What a server needs to call it
(latent size or input contract, image shape, value range) is stored twice: in the ONNX file's
metadata_props and in a sidecar JSON.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import torch

from ganops.errors import ExportError
from ganops.export import signature
from ganops.export.signature import OUTPUT, input_signature, is_restoration
from ganops.models import ArchSpec

log = logging.getLogger(__name__)


def class_cdf(G: torch.nn.Module) -> list[float] | None:
    """The cumulative class prior a conditional generator reads labels from (``LatentClasses``)."""
    from ganops.models.layers import LatentClasses

    found = [m for m in G.modules() if isinstance(m, LatentClasses)]
    return [float(v) for v in found[0].cdf] if found else None


def model_metadata(
    spec: ArchSpec, cdf: list[float] | None = None, trained_on: dict | None = None
) -> dict[str, str]:
    if is_restoration(spec):
        return _restoration_metadata(spec, trained_on)
    meta = {
        "ganops.arch": spec.arch,
        "ganops.latent_dim": str(spec.latent_dim),
        "ganops.image_shape": ",".join(map(str, (spec.channels, spec.image_size, spec.image_size))),
        "ganops.value_range": "-1,1",
        "ganops.input": signature.input_name(spec),
        "ganops.output": OUTPUT,
    }
    if cdf:  # conditional: the class is read from z[:, 0] against this prior (see serve.latents.with_class)
        meta["ganops.num_classes"] = str(len(cdf))
        meta["ganops.class_cdf"] = ",".join(f"{v:.9g}" for v in cdf)
    return meta


def _restoration_metadata(spec: ArchSpec, trained_on: dict | None) -> dict[str, str]:
    contract = signature.restoration_contract(spec)
    named = {"arch": spec.arch, "input": signature.input_name(spec), "output": OUTPUT, **contract}
    # The training data's facts as ganops.trained_on.<key>: a registered file alone tells the server.
    named |= {f"trained_on.{key}": value for key, value in (trained_on or {}).items()}
    return {f"ganops.{key}": signature.metadata_text(value) for key, value in named.items()}


def export_onnx(
    G: torch.nn.Module, spec: ArchSpec, path: Path, opset: int, trained_on: dict | None = None
) -> None:
    import onnx

    G = G.cpu().eval()
    sig = input_signature(spec)
    program = torch.onnx.export(
        G,
        (sig.example,),
        input_names=[sig.input],
        output_names=[OUTPUT],
        dynamic_shapes=sig.dynamic_shapes,
        opset_version=opset,
        dynamo=True,
        external_data=False,
        optimize=True,  # constant folding; folds BatchNorm into the convolutions
    )
    model = program.model_proto
    _drop_stack_traces(model.graph)
    _sort_range_constraints(model.graph)
    for key, value in model_metadata(spec, class_cdf(G), trained_on).items():
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


RANGE_CONSTRAINTS = "pkg.torch.export.ExportedProgram.range_constraints"
_RANGE = re.compile(r"([^{},]+?): (VR\[[^\]]*\])")


def _sort_range_constraints(graph) -> None:
    """torch.export writes the ranges of the symbolic sizes (``{s75: VR[2, int_oo], s95: ...}``) in set
    order, which follows Python's string hashing and so changes from one process to the next: the same
    model would export to other bytes. Write them sorted by symbol."""
    for entry in graph.metadata_props:
        if entry.key == RANGE_CONSTRAINTS:
            ranges = sorted((symbol.strip(), bounds) for symbol, bounds in _RANGE.findall(entry.value))
            entry.value = "{" + ", ".join(f"{symbol}: {bounds}" for symbol, bounds in ranges) + "}"


def ort_session(path: Path, providers: list[str] | None = None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=providers or ["CPUExecutionProvider"])


def run_graph(path: Path, inputs: np.ndarray) -> np.ndarray:
    """The graph's output for ``inputs`` on ONNX Runtime's CPU provider (whatever its one input is named)."""
    session = ort_session(path)
    return session.run([OUTPUT], {session.get_inputs()[0].name: inputs})[0]


def parity(G: torch.nn.Module, path: Path, inputs: torch.Tensor) -> float:
    """Max abs difference between PyTorch and ONNX Runtime (CPU) on the same inputs (latents or images).

    Non-finite outputs are an error, not a difference: NaN compares false with any tolerance."""
    with torch.inference_mode():
        expected = G.cpu().eval()(inputs).numpy()
    if bad := _non_finite(expected):
        raise ExportError(
            f"the generator returns {bad} non-finite values (NaN/inf) of {expected.size} on the parity inputs: "
            "training diverged; retrain (lower train.lr or another train.loss) before exporting"
        )
    got = run_graph(path, inputs.numpy())
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


def sidecar(
    spec: ArchSpec,
    path: Path,
    sha256: str,
    opset: int,
    tolerance: float,
    samples: int,
    trained_on: dict | None = None,
) -> dict:
    """The file's contract (what a server needs), what it was trained on (when given), and the parity
    check it passed. The measured difference is left out: ONNX Runtime picks its kernels by CPU, so it
    is a fact of this machine (logs/export.json), and this DVC-tracked file must be the same bytes on
    any machine."""
    if is_restoration(spec):
        scaled = ["height", "width"] if spec.scale == 1 else [f"height*{spec.scale}", f"width*{spec.scale}"]
        shapes = (
            ["batch", signature.input_channels(spec), "height", "width"],
            ["batch", spec.channels, *scaled],
        )
        contract = signature.restoration_contract(spec)
        checked = {"input_sizes": [list(hw) for hw in signature.parity_sizes(spec)]}
    else:
        side = spec.image_size
        shapes = (["batch", spec.latent_dim], ["batch", spec.channels, side, side])
        contract = {
            "latent_dim": spec.latent_dim,
            "image_shape": [spec.channels, side, side],
            "value_range": [-1.0, 1.0],
        }
        checked = {}
    return {
        "file": path.name,
        "sha256": sha256,
        "opset": opset,
        "input": {"name": signature.input_name(spec), "shape": shapes[0], "dtype": "float32"},
        "output": {"name": OUTPUT, "shape": shapes[1], "dtype": "float32"},
        **contract,
        **({"trained_on": trained_on} if trained_on else {}),
        "arch": spec.to_dict(),
        "parity": {"samples": samples, **checked, "tolerance": tolerance, "provider": "CPU", "passed": True},
    }
