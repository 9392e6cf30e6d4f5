"""export: models/generator.pt -> models/generator.onnx (+ sidecar JSON), checked for parity."""

from __future__ import annotations

import logging

import torch

from ganops.config import Params
from ganops.errors import ExportError
from ganops.export.onnx_export import export_onnx, parity, sidecar
from ganops.files import atomic_path, sha256_file, write_json
from ganops.runtime import seeded_generator
from ganops.stages import Layout
from ganops.training.loop import load_generator

log = logging.getLogger(__name__)


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
    return info
