"""export: models/generator.pt -> models/generator.onnx (+ sidecar JSON), checked for parity,
plus an fp16 variant for GPUs and a Triton model repository, both derived from the fp32 file."""

from __future__ import annotations

import logging

import torch

from ganops.config import Params
from ganops.errors import ExportError
from ganops.export.fp16 import convert_fp16, fp16_parity
from ganops.export.onnx_export import export_onnx, parity, sidecar
from ganops.export.triton import write_repository
from ganops.files import atomic_path, sha256_file, write_json
from ganops.models.io import load_generator
from ganops.runtime import Stream, stream
from ganops.stages import Layout

log = logging.getLogger(__name__)


def _export_fp16(layout: Layout, fp32_info: dict, latents: torch.Tensor, measured: dict) -> dict:
    """Write the fp16 variant and its sidecar, or skip it; returns the summary for the export report
    (and adds this machine's measured differences to ``measured``).

    The variant is optional, so nothing here fails the stage: a graph the converter cannot make,
    or one whose images fall short of the fp32 ones, is skipped with one line in the log and the
    reason in the report; the fp32 file is delivered either way."""
    path = layout.fp16_onnx
    sidecar_path = path.with_name(path.name + ".json")
    # A variant of an earlier model must never sit beside this one's fp32 file.
    for stale in (path, sidecar_path):
        stale.unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            convert_fp16(layout.onnx, tmp)
            grey = fp16_parity(layout.onnx, tmp, latents.numpy())
            if reason := grey.shortfall():
                raise ExportError(f"its 8-bit images differ from fp32's: {reason}")
            sha = sha256_file(tmp)
    except Exception as err:  # noqa: BLE001 - an optional variant: any failure means "skip it and say why"
        reason = f"{err}" if isinstance(err, ExportError) else f"{type(err).__name__}: {err}"
        reason = (reason.strip().splitlines() or [type(err).__name__])[0][:300]
        log.warning("fp16 variant skipped (%s); the fp32 file is exported and served as usual", reason)
        return {"written": False, "reason": reason}
    parity = grey.check()
    measured["fp16_parity"] = grey.measured()
    info = {**fp32_info, "file": path.name, "sha256": sha, "precision": "fp16", "parity": parity}
    write_json(sidecar_path, info)
    log.info(
        "fp16 variant %s; vs fp32: max %d, mean %.3g grey levels (max abs diff %.3g)",
        path,
        grey.max_grey_diff,
        grey.mean_grey_diff,
        grey.max_abs_diff,
    )
    return {
        "written": True,
        "file": str(path.relative_to(layout.onnx.parent)),
        "sha256": sha,
        "parity": parity,
    }


def run(params: Params, layout: Layout, **_) -> dict:
    p = params.export
    G, spec = load_generator(layout.generator, "cpu")
    parity_z = stream(params.seed, Stream.EXPORT_PARITY_Z)
    latents = torch.randn(p.parity_samples, spec.latent_dim, generator=parity_z)
    # Export and check in a temp file: a model that fails parity never replaces a good one.
    with atomic_path(layout.onnx) as tmp:
        export_onnx(G, spec, tmp, p.opset)
        max_abs_diff = parity(G, tmp, latents)
        if max_abs_diff > p.parity_tolerance:
            raise ExportError(
                f"ONNX Runtime output differs from PyTorch by {max_abs_diff:.3g} > export.parity_tolerance="
                f"{p.parity_tolerance}; the graph was not written. Try another export.opset"
            )
        sha = sha256_file(tmp)
    info = sidecar(spec, layout.onnx, sha, p.opset, p.parity_tolerance, p.parity_samples)
    log.info("exported %s (opset %d); parity max abs diff %.3g", layout.onnx, p.opset, max_abs_diff)
    measured = {"parity_max_abs_diff": max_abs_diff}
    info["fp16"] = _export_fp16(layout, info, latents, measured)
    write_json(layout.onnx_sidecar, info)
    write_json(layout.timings("export"), measured)  # this machine's numbers: run_stage adds its timings
    folder = write_repository(layout.onnx, layout.triton)
    log.info("Triton model repository: %s", folder)
    return info
