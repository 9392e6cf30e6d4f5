"""FID and KID in the domain feature space, computed with torchmetrics.

The reference set is the test split. Its features are extracted once and kept
(``reset_real_features=False``) while two candidate sets are scored against it: real train
images (the floor: what a perfect generator would get with this many samples) and the
generator's samples.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import torch
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from ganops.metrics.evaluator import DomainFeatures


class DomainMetrics:
    def __init__(
        self, features: DomainFeatures, kid_subsets: int, kid_subset_size: int, device: torch.device
    ):
        self.fid = FrechetInceptionDistance(feature=features, reset_real_features=False).to(device)
        with warnings.catch_warnings():  # "KID keeps all features in memory": intended, they are small
            warnings.simplefilter("ignore", UserWarning)
            self.kid = KernelInceptionDistance(
                feature=features, subsets=kid_subsets, subset_size=kid_subset_size, reset_real_features=False
            ).to(device)
        self.device = device

    def add_reference(self, batches: Iterable[torch.Tensor]) -> None:
        for images in batches:
            images = images.to(self.device)
            self.fid.update(images, real=True)
            self.kid.update(images, real=True)

    def score(self, batches: Iterable[torch.Tensor]) -> dict[str, float]:
        """FID/KID of ``batches`` (float images in [-1, 1]) against the reference set."""
        self.fid.reset()
        self.kid.reset()
        for images in batches:
            images = images.to(self.device)
            self.fid.update(images, real=False)
            self.kid.update(images, real=False)
        kid_mean, kid_std = self.kid.compute()
        return {"fid": float(self.fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std)}
