"""A restoration model scored against the classical method a user has without it, on the task's
fixed evaluation set (data/evalset), into one report (reports/metrics.json) with both side by side.

- PSNR and SSIM on the Y channel (metrics.restoration: BT.601, data range 1; superres crops a
  border equal to the scale factor), with 95% intervals;
- fid_domain and kid_domain of the outputs against the real test images, in the domain
  evaluator's feature space (what the sampling task is scored on);
- a task with a mask (inpaint): PSNR inside the hole, and every score by mask-area bins (as LaMa reports);
- the task's own measures (colorize: colourfulness, chroma error and the Jensen-Shannon distance of
  (Cb, Cr) histograms to the real images, which see colour where the evaluator may not).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ganops.config import Params
from ganops.data.prepared import EVAL_INPUTS, EVAL_TARGETS, load_image_list, load_split, to_unit_range
from ganops.files import sha256_file
from ganops.metrics import MetricContext, compute
from ganops.metrics import restoration as rm
from ganops.metrics.cache import cache_folder, cache_key, cached_features
from ganops.metrics.features import DomainFeaturesAndLogits, extract
from ganops.runtime import Stream, stream
from ganops.tasks import build_task

log = logging.getLogger(__name__)

FEATURE_METRICS = ("fid", "kid", "fid_bootstrap", "classes")  # those that apply to restored images


def _batches(images: torch.Tensor, size: int):
    return (images[start : start + size] for start in range(0, len(images), size))


@torch.no_grad()
def _run(fn, inputs: torch.Tensor, size: int, device) -> torch.Tensor:
    return torch.cat([fn(batch.to(device)).float().cpu() for batch in _batches(inputs, size)])


@dataclass(frozen=True)
class ScoringPaths:
    """What scoring reads: the evaluation set, the prepared data, and the feature cache's folder."""

    evalset: Path
    prepared: Path
    cache: Path


@dataclass(frozen=True)
class SizeGroup:
    """Consecutive images of the evaluation set that share one size: G runs on them as a batch."""

    inputs: torch.Tensor  # G's inputs, float32
    targets: torch.Tensor  # the originals, in [-1, 1]


def load_groups(evalset: Path) -> list[SizeGroup]:
    """The evaluation set (data/evalset) as runs of same-size images, in order."""
    inputs, targets = (load_image_list(evalset / name) for name in (EVAL_INPUTS, EVAL_TARGETS))
    groups, start = [], 0
    for end in range(1, len(targets) + 1):
        if end == len(targets) or targets[end].shape != targets[start].shape:
            stacked = (
                torch.from_numpy(np.stack(inputs[start:end])),
                torch.from_numpy(np.stack(targets[start:end])),
            )
            groups.append(SizeGroup(stacked[0], to_unit_range(stacked[1])))
            start = end
    return groups


def tiles(images: torch.Tensor, size: int) -> torch.Tensor:
    """The non-overlapping ``size`` x ``size`` tiles of each image (rows, then columns; the remainder
    at the bottom and right left out): what the domain evaluator, trained on patches, can see."""
    n, c, height, width = images.shape
    rows, columns = height // size, width // size
    cut = images[:, :, : rows * size, : columns * size].reshape(n, c, rows, size, columns, size)
    return cut.permute(0, 2, 4, 1, 3, 5).reshape(n * rows * columns, c, size, size)


def _per_image(
    task, outputs: list[torch.Tensor], groups: list[SizeGroup], border: int
) -> dict[str, torch.Tensor]:
    """Every per-image score of one method's ``outputs`` (one tensor per group), by name, in set order."""
    values = [
        {
            **rm.psnr_ssim(restored, group.targets, border=border, mask=task.hole(group.inputs)),
            **task.own_scores(restored, group.targets),
        }
        for restored, group in zip(outputs, groups, strict=True)
    ]
    return {name: torch.cat([v[name] for v in values]) for name in values[0]}


def score(
    params: Params,
    paths: ScoringPaths,
    G: torch.nn.Module,
    net: DomainFeaturesAndLogits,
    evaluator_sha: str,
    device,
) -> dict:
    """The report of G on the task's evaluation set, beside the task's classical baseline."""
    p = params.evaluate
    task = build_task(params, device, stream(params.seed, Stream.LATENT_NOISE))
    baseline = task.facts.baseline.name
    groups = load_groups(paths.evalset)
    channels = groups[0].targets.shape[1]
    methods = {"gan": (G, device), baseline: (lambda x: task.baseline(x, channels), "cpu")}
    outputs = {
        method: [_run(fn, group.inputs, p.batch_size, where) for group in groups]
        for method, (fn, where) in methods.items()
    }
    test = load_split(paths.prepared, "test")
    tile = test.images.shape[-1]  # the training size, the only one the evaluator has seen
    target_tiles = torch.cat([tiles(group.targets, tile) for group in groups])
    whole = any(group.targets.shape[-2:] != (tile, tile) for group in groups)
    if whole:  # photos at their own size: their tiles beside the originals' tiles at the same places
        reference, labels = extract(net, _batches(target_tiles, p.batch_size), device), None
    else:  # images at the training size: beside every real test image, as the sampling task is
        key = cache_key(paths.prepared, "test", len(test.images), evaluator_sha)
        reference = cached_features(
            cache_folder(paths.cache),
            key,
            lambda: extract(
                net, (to_unit_range(torch.from_numpy(b)) for b in _batches(test.images, p.batch_size)), device
            ),
        )
        labels = test.labels
    border = task.scale if task.scale > 1 else 0
    per_image = {method: _per_image(task, restored, groups, border) for method, restored in outputs.items()}
    scores = {}
    for method, restored in outputs.items():
        restored_tiles = torch.cat([tiles(images, tile) for images in restored])
        features = extract(net, _batches(restored_tiles, p.batch_size), device)
        ctx = MetricContext.of(
            params, reference, features, labels, net.classifier.num_classes,
            kid_subset_size=min(p.kid_subset_size, len(restored_tiles), len(reference.features)),
        )  # fmt: skip
        named = {f"{k}_y" if k in ("psnr", "ssim") else k: v for k, v in per_image[method].items()}
        scores[method] = {
            **rm.summarize(named),
            **compute([m for m in p.metrics if m in FEATURE_METRICS], ctx),
            **task.own_report(restored_tiles, target_tiles),
        }
    counts = {
        "evaluation_set": sum(len(group.targets) for group in groups),
        "whole_photos": whole,
        "pixels": sum(group.targets[:, 0].numel() for group in groups),
        "tiles": len(target_tiles),
        "reference": len(reference.features),
    }
    report = _report(task, scores, border, counts, paths.evalset, tile, whole)
    masks = [task.hole(group.inputs) for group in groups]
    if masks[0] is not None:
        report["by_coverage"] = _by_coverage(per_image, torch.cat([rm.hole_coverage(m) for m in masks]))
        report["conventions"]["psnr_hole"] = "PSNR over the hole's pixels only (mask 1 = hole)"
    references, conventions = task.own_references([group.targets for group in groups], target_tiles)
    report.update(references)
    report["conventions"].update(conventions)
    _log_side_by_side(report, task.name, baseline)
    return report


def _report(
    task, scores: dict[str, dict], border: int, counts: dict, evalset: Path, tile: int, whole: bool
) -> dict:
    """The GAN's scores, its primary metric's interval, and the baseline's scores beside them."""
    primary = task.card.primary
    metric, baseline = primary.metric, task.facts.baseline.name
    gan = scores["gan"]
    interval = {}
    if f"{metric}_ci95" in gan:  # PSNR's interval, as evaluate's bootstrap gives FID's
        half = gan[f"{metric}_ci95"]
        interval = {f"{metric}_ci95_low": gan[metric] - half, f"{metric}_ci95_high": gan[metric] + half}
    return {
        "task": task.name,
        **gan,
        **interval,
        "primary": {"metric": metric, "higher_is_better": primary.higher_is_better},
        "baseline": {"method": baseline, **scores[baseline]},
        "conventions": {
            "psnr_y, ssim_y": "Y of BT.601 (studio range) for RGB, the grey value for one channel; data range 1; "
            f"border crop {border} px; PSNR capped at {rm.PSNR_CAP_DB:g} dB; *_ci95: 95% half-width over images",
            "fid_domain, kid_domain": (
                f"the outputs' {tile} px tiles against the originals' tiles, domain evaluator features"
                if whole
                else "outputs against every real test image, domain evaluator features"
            ),
            "counts": "evaluation_set: images (whole_photos: held-out photos at their own size); pixels: "
            "scored per channel; tiles: of the training size, for the feature metrics",
        },
        "counts": counts,
        "evaluation": f"{task.name}:{sha256_file(evalset / EVAL_INPUTS)[:16]}",
        "notes": [
            "lpips omitted: it needs pretrained network weights, and nothing is downloaded here "
            "(torchmetrics' LPIPS fetches them)"
        ],
    }


def _log_side_by_side(report: dict, task: str, baseline: str) -> None:
    # the primary first, each once
    shown = dict.fromkeys([report["primary"]["metric"], "psnr_y", "fid_domain"])
    log.info(
        "%s, GAN vs %s: %s",
        task,
        baseline,
        ", ".join(
            f"{k} {report.get(k, math.nan):.4g} vs {report['baseline'].get(k, math.nan):.4g}" for k in shown
        ),
    )


def _by_coverage(per_image: dict[str, dict], coverage: torch.Tensor) -> dict:
    bins = {}
    for label, index in rm.coverage_bins(coverage):
        bins[label] = {"count": len(index)}
        for method, values in per_image.items():
            bins[label][method] = rm.summarize({k: v[index] for k, v in values.items()})
    return bins
