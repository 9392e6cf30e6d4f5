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
from ganops.data.prepared import load_split, to_unit_range
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
    inputs = torch.from_numpy(np.load(paths.evalset / "inputs.npy"))
    targets = to_unit_range(torch.from_numpy(np.load(paths.evalset / "targets.npy")))
    outputs = {
        "gan": _run(G, inputs, p.batch_size, device),
        baseline: _run(lambda x: task.baseline(x, targets.shape[1]), inputs, p.batch_size, "cpu"),
    }
    test = load_split(paths.prepared, "test")
    key = cache_key(paths.prepared, "test", len(test.images), evaluator_sha)
    reference = cached_features(
        cache_folder(paths.cache),
        key,
        lambda: extract(
            net, (to_unit_range(torch.from_numpy(b)) for b in _batches(test.images, p.batch_size)), device
        ),
    )
    mask = task.hole(inputs)
    border = task.scale if task.scale > 1 else 0
    per_image = {
        method: {
            **rm.psnr_ssim(restored, targets, border=border, mask=mask),
            **task.own_scores(restored, targets),
        }
        for method, restored in outputs.items()
    }
    scores = {}
    for method, restored in outputs.items():
        features = extract(net, _batches(restored, p.batch_size), device)
        ctx = MetricContext.of(
            params, reference, features, test.labels, net.classifier.num_classes,
            kid_subset_size=min(p.kid_subset_size, len(targets), len(test.images)),
        )  # fmt: skip
        named = {f"{k}_y" if k in ("psnr", "ssim") else k: v for k, v in per_image[method].items()}
        scores[method] = {
            **rm.summarize(named),
            **compute([m for m in p.metrics if m in FEATURE_METRICS], ctx),
            **task.own_report(restored, targets),
        }
    report = _report(task, scores, border, len(targets), len(test.images), paths.evalset)
    if mask is not None:
        report["by_coverage"] = _by_coverage(per_image, mask)
        report["conventions"]["psnr_hole"] = "PSNR over the hole's pixels only (mask 1 = hole)"
    references, conventions = task.own_references(targets, test.images)
    report.update(references)
    report["conventions"].update(conventions)
    _log_side_by_side(report, task.name, baseline)
    return report


def _report(task, scores: dict[str, dict], border: int, count: int, reference: int, evalset: Path) -> dict:
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
            "fid_domain, kid_domain": "outputs against every real test image, domain evaluator features",
        },
        "counts": {"evaluation_set": count, "reference": reference},
        "evaluation": f"{task.name}:{sha256_file(evalset / 'inputs.npy')[:16]}",
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


def _by_coverage(per_image: dict[str, dict], mask: torch.Tensor) -> dict:
    bins = {}
    for label, index in rm.coverage_bins(rm.hole_coverage(mask)):
        bins[label] = {"count": len(index)}
        for method, values in per_image.items():
            bins[label][method] = rm.summarize({k: v[index] for k, v in values.items()})
    return bins
