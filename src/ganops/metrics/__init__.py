"""Sample-quality metrics, looked up by name (``evaluate.metrics``), and the feature nets they use.

A metric is a function ``(MetricContext) -> {name: value}`` registered with ``@METRICS.register``.
Every returned name says its feature space: ``*_domain`` for the evaluator CNN trained on the
same data, ``*_inception`` for Inception-v3.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from ganops import catalog
from ganops.plugins import Registry

if TYPE_CHECKING:
    import numpy as np

    from ganops.config import Params

log = logging.getLogger(__name__)


@dataclass
class MetricContext:
    real: object  # Features of the reference split (domain net)
    fake: object  # Features of the generated samples (domain net)
    real_labels: torch.Tensor | None
    num_classes: int
    seed: int
    kid_subsets: int = 50
    kid_subset_size: int = 1000
    prdc_samples: int = 5000
    prdc_k: int = 5
    bootstrap: int = 50
    # For metrics in another feature space: fresh iterators over the real and generated images.
    real_images: Callable[[], Iterator[torch.Tensor]] | None = None
    fake_images: Callable[[], Iterator[torch.Tensor]] | None = None
    inception_weights: str | None = None
    inception_builder: Callable | None = None
    device: str = "cpu"
    notes: list[str] = field(default_factory=list)

    @classmethod
    def of(
        cls, params: Params, real, fake, labels: np.ndarray | None, num_classes: int, **extra
    ) -> MetricContext:
        """The context that ``params.evaluate`` describes, for ``fake`` against ``real`` (both features);
        ``extra`` sets the other fields or overrides one."""
        p = params.evaluate
        fields = {
            "real_labels": None if labels is None else torch.from_numpy(labels),
            "seed": params.seed,
            "kid_subsets": p.kid_subsets,
            "kid_subset_size": p.kid_subset_size,
            "prdc_samples": p.prdc_samples,
            "prdc_k": p.prdc_k,
            "bootstrap": p.bootstrap,
        }
        return cls(real=real, fake=fake, num_classes=num_classes, **{**fields, **extra})


MetricFn = Callable[[MetricContext], dict[str, float]]
METRICS: Registry[MetricFn] = Registry(catalog.METRICS)


@METRICS.register("fid")
def _fid(ctx: MetricContext) -> dict[str, float]:
    from ganops.metrics.fid import fid

    return {"fid_domain": fid(ctx.real.features, ctx.fake.features)}


@METRICS.register("kid")
def _kid(ctx: MetricContext) -> dict[str, float]:
    from ganops.metrics.fid import kid

    mean, std = kid(ctx.real.features, ctx.fake.features, ctx.kid_subsets, ctx.kid_subset_size, ctx.seed)
    return {"kid_domain": mean, "kid_domain_std": std}


@METRICS.register("is")
def _is(ctx: MetricContext) -> dict[str, float]:
    from ganops.metrics.fid import inception_score

    if ctx.fake.logits is None:
        return {}
    mean, std = inception_score(ctx.fake.logits, ctx.seed)
    return {"is_domain": mean, "is_domain_std": std}


@METRICS.register("prdc")
def _prdc(ctx: MetricContext) -> dict[str, float]:
    from ganops.metrics.prdc import prdc

    n = ctx.prdc_samples
    scores = prdc(ctx.real.features[:n], ctx.fake.features[:n], ctx.prdc_k)
    return {f"{name}_domain": value for name, value in scores.items()}


@METRICS.register("classes")
def _classes(ctx: MetricContext) -> dict[str, float]:
    from ganops.metrics.classes import class_stats

    if ctx.real_labels is None or ctx.fake.logits is None:
        return {}
    return class_stats(ctx.fake.logits, ctx.real_labels, ctx.num_classes)


@METRICS.register("fid_bootstrap")
def _fid_bootstrap(ctx: MetricContext) -> dict[str, float]:
    from ganops.metrics.fid import fid_bootstrap

    low, high = fid_bootstrap(ctx.real.features, ctx.fake.features, ctx.bootstrap, ctx.seed)
    return {"fid_domain_ci95_low": low, "fid_domain_ci95_high": high}


@METRICS.register("fid_inception")
def _fid_inception(ctx: MetricContext) -> dict[str, float]:
    from ganops.metrics.features import extract
    from ganops.metrics.fid import fid
    from ganops.metrics.inception import InceptionFeatures, find_weights, torch_fidelity_inception

    weights, reason = find_weights(ctx.inception_weights)
    if weights is None or ctx.real_images is None or ctx.fake_images is None:
        ctx.notes.append(reason or "fid_inception omitted: no images to compare")
        log.info("%s", ctx.notes[-1])
        return {}
    net = InceptionFeatures((ctx.inception_builder or torch_fidelity_inception)(weights))
    net = net.to(ctx.device)
    real = extract(net, ctx.real_images(), ctx.device)
    fake = extract(net, ctx.fake_images(), ctx.device)
    return {"fid_inception": fid(real.features, fake.features)}


def compute(names: list[str], ctx: MetricContext) -> dict[str, float]:
    """Run the named metrics (fid first, always) and merge their results."""
    results: dict[str, float] = {}
    for name in ["fid", *(n for n in names if n != "fid")]:
        results.update(METRICS.get(name)(ctx))
    return results
