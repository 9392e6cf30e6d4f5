"""FID, KID and IS on precomputed features, computed with torchmetrics.

Features are extracted once per image set (see ``features.py``) and handed to torchmetrics
through a pass-through "feature extractor", so one pass over the images serves every metric,
and the reference set's features can be cached. Names say which feature space was used
(``fid_domain``: the evaluator CNN; ``fid_inception``: Inception-v3).
"""

from __future__ import annotations

import warnings
from statistics import NormalDist

import numpy as np
import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance, _compute_fid
from torchmetrics.image.inception import InceptionScore
from torchmetrics.image.kid import KernelInceptionDistance

# Each metric is computed by one process on the features it holds. torchmetrics would otherwise sync
# its states across a torch.distributed group at compute(): under data-parallel training only rank 0
# measures live FID, and that sync would wait forever for ranks that never join it.
ONE_PROCESS = {"sync_on_compute": False}


class _Given(nn.Module):
    """Pass-through: the 'images' torchmetrics sees are already feature vectors."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    metric = FrechetInceptionDistance(feature=_Given(real.shape[1]), **ONE_PROCESS)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return float(metric.compute())


def kid(
    real: torch.Tensor, fake: torch.Tensor, subsets: int, subset_size: int, seed: int
) -> tuple[float, float]:
    """KID mean and std over ``subsets`` random subsets (drawn from torch's global stream, seeded here)."""
    with warnings.catch_warnings():  # "KID keeps all features in memory": intended, they are small
        warnings.simplefilter("ignore", UserWarning)
        metric = KernelInceptionDistance(
            feature=_Given(real.shape[1]),
            subsets=subsets,
            subset_size=min(subset_size, len(real), len(fake)),
            **ONE_PROCESS,
        )
    metric.update(real, real=True)
    metric.update(fake, real=False)
    torch.manual_seed(seed)
    mean, std = metric.compute()
    return float(mean), float(std)


def inception_score(logits: torch.Tensor, seed: int, splits: int = 10) -> tuple[float, float]:
    """IS = exp E[KL(p(y|x) || p(y))] with the domain classifier's p(y|x) (``is_domain``)."""
    with warnings.catch_warnings():  # "IS keeps all features in memory": intended, they are logits
        warnings.simplefilter("ignore", UserWarning)
        metric = InceptionScore(feature=nn.Identity(), splits=splits, **ONE_PROCESS)
    metric.update(logits.double())
    torch.manual_seed(seed)
    mean, std = metric.compute()
    return float(mean), float(std)


def _stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    f = features.double()
    mu = f.mean(0)
    centred = f - mu
    return mu, centred.T @ centred / (len(f) - 1)


def fid_bootstrap(
    real: torch.Tensor, fake: torch.Tensor, resamples: int, seed: int, level: float = 0.95
) -> tuple[float, float]:
    """A ``level`` interval for the population FID: the bias-corrected normal bootstrap interval over
    ``resamples`` resamples (with replacement) of both sets, widened where needed to hold the point FID.

    FID of finite sets is biased upward, and a resample repeats images, which adds about as much bias
    again: the percentile interval of the resampled FIDs lay above the point FID near the floor. The
    resampled FIDs' mean less the point FID estimates that bias, their spread the standard error, so the
    interval is centred on the point FID less the bias. Both sets are resampled: the reference set's
    sampling error biases FID too (as much as the generated set's at equal sizes). Near the floor the
    bias exceeds the spread and the centred interval ends below the point FID; it is then stretched up to
    the point FID (the value reported) and over-covers. Coverage measured: docs/registry.md.
    """
    point = fid(real, fake)
    generator = torch.Generator().manual_seed(seed)
    values = []
    for _ in range(resamples):
        fake_idx = torch.randint(0, len(fake), (len(fake),), generator=generator)
        real_idx = torch.randint(0, len(real), (len(real),), generator=generator)
        mu_r, sigma_r = _stats(real[real_idx])
        mu_f, sigma_f = _stats(fake[fake_idx])
        values.append(float(_compute_fid(mu_r, sigma_r, mu_f, sigma_f)))
    centre = point - (float(np.mean(values)) - point)
    half_width = NormalDist().inv_cdf((1 + level) / 2) * float(np.std(values, ddof=1))
    low = min(max(centre - half_width, 0.0), point)  # a population FID is never negative
    high = max(centre + half_width, point)
    return low, high
