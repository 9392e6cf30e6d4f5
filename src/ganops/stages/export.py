"""export: models/generator.pt -> models/generator.onnx (+ sidecar JSON), checked for parity,
plus an fp16 variant for GPUs and a Triton model repository, both derived from the fp32 file."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ganops.cards import registered_model
from ganops.config import ExportParams, Params
from ganops.errors import ExportError
from ganops.export.fp16 import GreyParity, convert_fp16, fp16_parity
from ganops.export.onnx_export import export_onnx, parity, sidecar
from ganops.export.signature import batch_label, is_restoration, parity_inputs, trained_on
from ganops.export.triton import write_repository
from ganops.files import atomic_path, read_json, sha256_file, write_json
from ganops.models import ArchSpec
from ganops.models.io import load_generator
from ganops.runtime import Stream, stream
from ganops.stages import Layout

log = logging.getLogger(__name__)


def _export_fp16(layout: Layout, fp32_info: dict, batches: list[torch.Tensor], measured: dict) -> dict:
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
            grey = _worst(fp16_parity(layout.onnx, tmp, batch.numpy()) for batch in batches)
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


def _worst(results) -> GreyParity:
    """Of the fp16 checks at each input size, the one furthest from fp32 (the first to fall short)."""
    return max(
        results, key=lambda grey: (grey.shortfall() is not None, grey.max_grey_diff, grey.mean_grey_diff)
    )


def _trained_on(layout: Layout, spec: ArchSpec) -> dict | None:
    """What an image-to-image model learned from (prepare's manifest), so the server can say it and warn
    on uploads that do not fit. None for a sampler, whose export keeps the bytes dvc.lock pins."""
    if not is_restoration(spec):
        return None
    if not layout.manifest.exists():  # a generator.pt made outside the pipeline (DVC always has it)
        log.warning(
            "%s: not found; the export records no training data (the server says unknown)", layout.manifest
        )
        return None
    facts = trained_on(read_json(layout.manifest))
    if (facts["channels"], facts["image_size"]) != (spec.channels, spec.image_size):
        raise ExportError(
            f"{layout.manifest}: describes {facts['channels']}-channel {facts['image_size']} px images, but "
            f"{layout.generator} was trained on {spec.channels}-channel {spec.image_size} px ones: the data was "
            "prepared again after training; rerun train (`dvc repro`) so model and data match"
        )
    return facts


def _checked_export(
    G: torch.nn.Module,
    spec: ArchSpec,
    p: ExportParams,
    tmp: Path,
    batches: list[torch.Tensor],
    trained: dict | None,
) -> dict[str, float]:
    """Export to ``tmp`` and measure parity on each batch; ExportError if one is beyond the tolerance."""
    export_onnx(G, spec, tmp, p.opset, trained)
    diffs = {}
    for batch in batches:
        label = batch_label(batch)
        diffs[label] = parity(G, tmp, batch)
        if diffs[label] > p.parity_tolerance:
            where = f" on {label} inputs" if is_restoration(spec) else ""
            raise ExportError(
                f"ONNX Runtime output differs from PyTorch by {diffs[label]:.3g}{where} > export.parity_tolerance="
                f"{p.parity_tolerance}; the graph was not written. Try another export.opset"
            )
    return diffs


def run(params: Params, layout: Layout, **_) -> dict:
    p = params.export
    G, spec = load_generator(layout.generator, "cpu")
    trained = _trained_on(layout, spec)
    # Latents, or random images at two sizes for a restoration generator (export.signature).
    batches = parity_inputs(spec, p.parity_samples, stream(params.seed, Stream.EXPORT_PARITY_Z))
    # Export and check in a temp file: a model that fails parity never replaces a good one.
    with atomic_path(layout.onnx) as tmp:
        diffs = _checked_export(G, spec, p, tmp, batches, trained)
        sha = sha256_file(tmp)
    max_abs_diff = max(diffs.values())
    info = sidecar(spec, layout.onnx, sha, p.opset, p.parity_tolerance, p.parity_samples, trained)
    log.info("exported %s (opset %d); parity max abs diff %.3g", layout.onnx, p.opset, max_abs_diff)
    measured = {"parity_max_abs_diff": max_abs_diff}
    if is_restoration(spec):
        measured["parity_max_abs_diff_by_input_size"] = diffs
    info["fp16"] = _export_fp16(layout, info, batches, measured)
    write_json(layout.onnx_sidecar, info)
    write_json(layout.timings("export"), measured)  # this machine's numbers: run_stage adds its timings
    name = registered_model(params.task, params.register.model_name)
    folder = write_repository(layout.onnx, layout.triton, name=name)
    log.info("Triton model repository: %s", folder)
    return info
