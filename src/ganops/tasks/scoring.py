"""A restoration model scored against the classical method a user has without it, on the task's
fixed evaluation set (data/evalset), into one report (reports/metrics.json) with both side by side.

- PSNR and SSIM on the Y channel (metrics.restoration: BT.601, data range 1; superres crops a
  border equal to the scale factor), with 95% intervals;
- fid_domain and kid_domain of the outputs against the real test images, in the domain
  evaluator's feature space (what the sampling task is scored on);
- inpaint: PSNR inside the hole, and every score by mask-area bins (as LaMa reports);
- colorize: the Jensen-Shannon distance of (Cb, Cr) histograms to the real images, which sees
  colour where the evaluator may not, with real-vs-real as its floor.
"""

from __future__ import annotations

import logging
import math

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
from ganops.stages import Layout
from ganops.tasks import build_task

log = logging.getLogger(__name__)

FEATURE_METRICS = ("fid", "kid", "fid_bootstrap", "classes")  # those that apply to restored images


def _batches(images: torch.Tensor, size: int):
    return (images[start : start + size] for start in range(0, len(images), size))


@torch.no_grad()
def _run(fn, inputs: torch.Tensor, size: int, device) -> torch.Tensor:
    return torch.cat([fn(batch.to(device)).float().cpu() for batch in _batches(inputs, size)])


def score(
    params: Params,
    layout: Layout,
    G: torch.nn.Module,
    net: DomainFeaturesAndLogits,
    evaluator_sha: str,
    device,
) -> dict:
    p = params.evaluate
    task = build_task(params, device, stream(params.seed, Stream.LATENT_NOISE))
    inputs = torch.from_numpy(np.load(layout.evalset / "inputs.npy"))
    targets = to_unit_range(torch.from_numpy(np.load(layout.evalset / "targets.npy")))
    channels = targets.shape[1]
    outputs = {
        "gan": _run(G, inputs, p.batch_size, device),
        task.baseline_name: _run(lambda x: task.baseline(x.cpu(), channels), inputs, p.batch_size, "cpu"),
    }
    test = load_split(layout.prepared, "test")
    key = cache_key(layout.prepared, "test", len(test.images), evaluator_sha)
    reference = cached_features(
        cache_folder(layout.root),
        key,
        lambda: extract(
            net, (to_unit_range(torch.from_numpy(b)) for b in _batches(test.images, p.batch_size)), device
        ),
    )
    mask = task.hole(inputs)
    border = task.scale if task.scale > 1 else 0
    count = len(targets)
    scores: dict[str, dict] = {}
    per_image: dict[str, dict] = {}
    for method, restored in outputs.items():
        per_image[method] = rm.psnr_ssim(restored, targets, border=border, mask=mask)
        features = extract(net, _batches(restored, p.batch_size), device)
        ctx = MetricContext.of(
            params, reference, features, test.labels, net.classifier.num_classes,
            kid_subset_size=min(p.kid_subset_size, count, len(test.images)),
        )  # fmt: skip
        if task.name == "colorize":  # measures that see colour, per image
            per_image[method]["colourfulness"] = rm.colourfulness(restored)
            per_image[method]["chroma_error"] = rm.chroma_error(restored, targets)
        named = {f"{k}_y" if k in ("psnr", "ssim") else k: v for k, v in per_image[method].items()}
        scores[method] = {
            **rm.summarize(named),
            **compute([m for m in p.metrics if m in FEATURE_METRICS], ctx),
        }
        if task.name == "colorize":
            scores[method]["colour_js"] = rm.colour_histogram_distance(restored, targets)
    metric, higher_is_better = task.primary
    gan = scores.pop("gan")
    interval = {}
    if f"{metric}_ci95" in gan:  # PSNR's interval, as evaluate's bootstrap gives FID's
        half = gan[f"{metric}_ci95"]
        interval = {f"{metric}_ci95_low": gan[metric] - half, f"{metric}_ci95_high": gan[metric] + half}
    report = {
        "task": task.name,
        **gan,
        **interval,
        "primary": {"metric": metric, "higher_is_better": higher_is_better},
        "baseline": {"method": task.baseline_name, **scores[task.baseline_name]},
        "conventions": {
            "psnr_y, ssim_y": "Y of BT.601 (studio range) for RGB, the grey value for one channel; data range 1; "
            f"border crop {border} px; PSNR capped at {rm.PSNR_CAP_DB:g} dB; *_ci95: 95% half-width over images",
            "fid_domain, kid_domain": "outputs against every real test image, domain evaluator features",
        },
        "counts": {"evaluation_set": count, "reference": len(test.images)},
        "evaluation": f"{task.name}:{sha256_file(layout.evalset / 'inputs.npy')[:16]}",
        "notes": [
            "lpips omitted: it needs pretrained network weights, and nothing is downloaded here "
            "(torchmetrics' LPIPS fetches them)"
        ],
    }
    if mask is not None:
        report["by_coverage"] = _by_coverage(per_image, mask)
        report["conventions"]["psnr_hole"] = "PSNR over the hole's pixels only (mask 1 = hole)"
    if task.name == "colorize":
        report["colourfulness_real"] = rm.summarize({"c": rm.colourfulness(targets)})["c"]
        report["colour_js_real"] = _real_colour_floor(test.images, count)
        report["conventions"].update(
            colourfulness="Hasler-Suesstrunk colourfulness of each output, 0..255 units (grey 0); "
            "colourfulness_real: of the real images (what a perfect colorizer gets)",
            chroma_error="mean |(Cb, Cr) - the real image's| per output, 0..255 units (a perfect colorizer: 0)",
            colour_js="Jensen-Shannon distance (bits) of the (Cb, Cr) histograms of the outputs and the real "
            "images; colour_js_real: other real test images against the same ones (depends on how alike "
            "the scenes are: few photos make it large)",
        )
    shown = dict.fromkeys([metric, "psnr_y", "fid_domain"])  # the primary first, each once
    log.info(
        "%s, GAN vs %s: %s",
        task.name,
        task.baseline_name,
        ", ".join(
            f"{k} {report.get(k, math.nan):.4g} vs {report['baseline'].get(k, math.nan):.4g}" for k in shown
        ),
    )
    return report


def _by_coverage(per_image: dict[str, dict], mask: torch.Tensor) -> dict:
    bins = {}
    for label, index in rm.coverage_bins(rm.hole_coverage(mask)):
        bins[label] = {"count": len(index)}
        for method, values in per_image.items():
            bins[label][method] = rm.summarize({k: v[index] for k, v in values.items()})
    return bins


def _real_colour_floor(images: np.ndarray, count: int) -> float:
    """colour_js of other real test images against the evaluation set's targets: the next ``count``
    test images, or with too few, one half of the targets against the other."""
    if len(images) >= 2 * count:
        ours, others = images[:count], images[count : 2 * count]
    else:
        ours, others = images[: count // 2], images[count // 2 : count]
    return rm.colour_histogram_distance(*(to_unit_range(torch.from_numpy(x)) for x in (others, ours)))
