"""export: models/generator.pt -> models/generator.onnx (+ sidecar JSON), checked for parity,
plus an fp16 variant for GPUs and a Triton model repository, both derived from the fp32 file."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ganops.config import Params
from ganops.errors import ExportError
from ganops.export.fp16 import convert_fp16, fp16_parity
from ganops.export.onnx_export import export_onnx, parity, sidecar
from ganops.export.triton import write_repository
from ganops.files import atomic_path, sha256_file, write_json
from ganops.models.io import load_generator
from ganops.runtime import seeded_generator
from ganops.stages import Layout

log = logging.getLogger(__name__)

# fp16 has ~3 significant digits; outputs live in [-1, 1], so 1e-2 still catches a broken graph.
FP16_TOLERANCE = 1e-2


def fp16_path(layout: Layout) -> Path:
    return layout.onnx.with_name("generator.fp16.onnx")


def triton_repo(layout: Layout) -> Path:
    return layout.root / "models" / "triton"


def _export_fp16(layout: Layout, fp32_info: dict, latents: torch.Tensor) -> dict:
    path = fp16_path(layout)
    with atomic_path(path) as tmp:
        convert_fp16(layout.onnx, tmp)
        max_abs_diff = fp16_parity(layout.onnx, tmp, latents.numpy())
        if max_abs_diff > FP16_TOLERANCE:
            raise ExportError(
                f"the fp16 graph differs from fp32 by {max_abs_diff:.3g} > {FP16_TOLERANCE}; "
                "it was not written. Serve the fp32 file"
            )
        sha = sha256_file(tmp)
    info = {
        **fp32_info,
        "file": path.name,
        "sha256": sha,
        "precision": "fp16",
        "parity": {
            **fp32_info["parity"],
            "max_abs_diff": max_abs_diff,
            "tolerance": FP16_TOLERANCE,
            "reference": "fp32 ONNX",
        },
    }
    write_json(path.with_name(path.name + ".json"), info)
    log.info("fp16 variant %s; max abs diff vs fp32 %.3g", path, max_abs_diff)
    return info


def run(params: Params, layout: Layout, **_) -> dict:
    p = params.export
    G, spec = load_generator(layout.generator, "cpu")
    latents = torch.randn(p.parity_samples, spec.latent_dim, generator=seeded_generator(params.seed, 6))
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
    info = sidecar(spec, layout.onnx, sha, p.opset, max_abs_diff, p.parity_tolerance, p.parity_samples)
    write_json(layout.onnx_sidecar, info)
    log.info("exported %s (opset %d); parity max abs diff %.3g", layout.onnx, p.opset, max_abs_diff)
    _export_fp16(layout, info, latents)
    folder = write_repository(layout.onnx, triton_repo(layout))
    log.info("Triton model repository: %s", folder)
    return info
