"""evaluate: the generator's sample quality and the real-data floor -> reports/metrics.json.

Reference set: the test split. Candidates: ``num_samples`` EMA-generator samples, and
``num_real`` real train images (the floor: what a perfect generator would get with this many
samples). Every metric in ``evaluate.metrics`` is computed for both, in the domain feature space
(the evaluator CNN); ``fid_inception`` only for the generator and only with local weights.
Real features are cached by content hash (ganops.metrics.cache).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch

from ganops.cards import card
from ganops.config import Params
from ganops.data.prepared import load_split, to_unit_range
from ganops.files import sha256_file, write_json
from ganops.metrics import MetricContext, compute
from ganops.metrics.cache import cache_folder, cache_key, cached_features
from ganops.metrics.evaluator import load_evaluator
from ganops.metrics.features import DomainFeaturesAndLogits, extract
from ganops.models.io import load_generator
from ganops.progress import Progress
from ganops.runtime import Stream, pick_device, stream
from ganops.stages import Layout

log = logging.getLogger(__name__)

# FID fits a Gaussian to the reference (test) features. With fewer images than feature dimensions
# its covariance is singular, and its sampling error, which every FID against this reference
# shares (the floor's and the generator's alike), shrinks only like dimensions / images: below
# twice the evaluator's feature dimension that error is most of the floor, and fid_domain can come
# out below it (300 icons: 30 test images against 128 dimensions).
FLOOR_MIN_REFERENCE_PER_DIM = 2


def floor_note(reference: int, train: int, feature_dim: int) -> str | None:
    """The note (and warning) for a test split too small for a trustworthy floor; None when it is large enough."""
    needed = FLOOR_MIN_REFERENCE_PER_DIM * feature_dim
    if reference >= needed:
        return None
    share = reference / (reference + train)
    return (
        f"floor unreliable: the test split has {reference} images, fewer than the {needed} (2 x the "
        f"evaluator's {feature_dim} feature dimensions) that FID needs for a stable reference; fid_domain "
        f"and its floor are then mostly the reference's sampling error, and fid_domain can come out below "
        f"the floor. Fix: more images (about {math.ceil(needed / share)} with {share:.0%} held out for "
        "testing), or hold out more: a larger data.test_fraction (sources without a test split) or data.max_test"
    )


def _real_batches(images: np.ndarray, count: int, batch: int, desc: str) -> Iterator[torch.Tensor]:
    count = min(count, len(images))
    with Progress(count, desc, unit="img") as progress:
        for start in range(0, count, batch):
            chunk = torch.from_numpy(images[start : min(start + batch, count)])
            progress.update(len(chunk))
            yield to_unit_range(chunk)


@torch.no_grad()
def _generated_batches(
    G, latent_dim: int, count: int, batch: int, seed: int, device
) -> Iterator[torch.Tensor]:
    noise = stream(seed, Stream.EVALUATE_Z)
    with Progress(count, "generate", unit="img") as progress:
        for start in range(0, count, batch):
            n = min(batch, count - start)
            progress.update(n)
            yield G(torch.randn(n, latent_dim, generator=noise).to(device)).float()


def run(params: Params, layout: Layout, inception_builder: Callable | None = None, **_) -> dict:
    p = params.evaluate
    device = pick_device(params.train.device)
    G, spec = load_generator(layout.generator, device)
    net = DomainFeaturesAndLogits(load_evaluator(layout.evaluator, device))
    evaluator_sha = sha256_file(layout.evaluator)
    if card(spec.task).image_to_image:  # scored on its evaluation set beside its classical baseline
        from ganops.tasks.scoring import ScoringPaths, score

        paths = ScoringPaths(evalset=layout.evalset, prepared=layout.prepared, cache=layout.root)
        report = score(params, paths, G, net, evaluator_sha, device)
        report.update(evaluator_sha256=evaluator_sha, generator_sha256=sha256_file(layout.generator))
        write_json(layout.metrics, report)
        return report
    test, train = load_split(layout.prepared, "test"), load_split(layout.prepared, "train")
    n_real = min(p.num_real, len(train.images))
    cache = cache_folder(layout.root)

    def real_features(split: str, images: np.ndarray, count: int, desc: str):
        key = cache_key(layout.prepared, split, count, evaluator_sha)
        return cached_features(
            cache, key, lambda: extract(net, _real_batches(images, count, p.batch_size, desc), device)
        )

    reference = real_features("test", test.images, len(test.images), "reference (test)")
    floor_set = real_features("train", train.images, n_real, "floor (train)")
    generate = lambda count: _generated_batches(G, spec.latent_dim, count, p.batch_size, params.seed, device)  # noqa: E731
    fake = extract(net, generate(p.num_samples), device)

    def context(candidate, **extra) -> MetricContext:
        return MetricContext.of(
            params, reference, candidate, test.labels, net.classifier.num_classes, **extra
        )

    n_inception = min(p.inception_samples, p.num_samples, len(test.images))
    model_ctx = context(
        fake,
        real_images=lambda: _real_batches(test.images, n_inception, p.batch_size, "inception (test)"),
        fake_images=lambda: generate(n_inception),
        inception_weights=p.inception_weights,
        inception_builder=inception_builder,
        device=str(device),
    )
    if net.classifier.head is None:
        model_ctx.notes.append(
            "is and classes omitted: the evaluator was trained without labels (reports/evaluator.json)"
        )
    unreliable = floor_note(len(test.images), len(train.images), reference.features.shape[1])
    if unreliable:
        log.warning("%s", unreliable)
        model_ctx.notes.append(unreliable)
    model = compute(p.metrics, model_ctx)
    floor = compute([m for m in p.metrics if m not in ("fid_bootstrap", "fid_inception")], context(floor_set))
    report = {
        **model,
        "floor": floor,
        "fid_domain_floor_ratio": model["fid_domain"] / max(floor["fid_domain"], 1e-12),
        "counts": {
            "generated": p.num_samples,
            "floor_real": n_real,
            "reference": len(test.images),
            "reference_split": "test",
            "prdc": min(p.prdc_samples, p.num_samples, len(test.images)),
            "fid_inception": n_inception if "fid_inception" in model else 0,
        },
        "notes": model_ctx.notes,
        "evaluator_sha256": evaluator_sha,
        "generator_sha256": sha256_file(layout.generator),
    }
    write_json(layout.metrics, report)
    log.info(
        "fid_domain %.3f (floor %.3f, ratio %.2f), kid_domain %.4f",
        report["fid_domain"],
        floor["fid_domain"],
        report["fid_domain_floor_ratio"],
        report.get("kid_domain", float("nan")),
    )
    return report
