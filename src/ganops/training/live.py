"""Live quality during training: FID on a small sample and class coverage, every ``eval_every`` steps.

Measured in the same domain feature space as the evaluate stage (models/evaluator.pt), against
the first ``eval_samples`` test images, whose features are cached by content hash. G's inputs
(the task's: latents, or degraded test images) are fixed for the whole run, so successive values
differ only because G changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ganops.data.prepared import load_split, to_unit_range
from ganops.files import sha256_file
from ganops.metrics.cache import cache_key, cached_features
from ganops.metrics.classes import class_stats
from ganops.metrics.evaluator import load_evaluator
from ganops.metrics.features import DomainFeaturesAndLogits, extract
from ganops.metrics.fid import fid

log = logging.getLogger(__name__)


class LiveQuality:
    def __init__(
        self,
        *,
        evaluator: Path,
        prepared: Path,
        cache: Path,
        samples: int,
        inputs: Callable[[np.ndarray], list[tuple]],  # the task's: G's fixed inputs for these test images
        device: torch.device,
    ) -> None:
        self.net = DomainFeaturesAndLogits(load_evaluator(evaluator, device))
        self.device = device
        test = load_split(prepared, "test")
        n = min(samples, len(test.images))
        key = cache_key(prepared, "test", n, sha256_file(evaluator))
        self.real = cached_features(
            cache, key, lambda: extract(self.net, self._real(test.images[:n]), device)
        )
        self.real_labels = torch.from_numpy(test.labels[:n]) if test.labels is not None else None
        self.num_classes = self.net.classifier.num_classes
        self.inputs = inputs(test.pairs[:n])

    @staticmethod
    def _real(images, batch: int = 500):
        for start in range(0, len(images), batch):
            yield to_unit_range(torch.from_numpy(images[start : start + batch]))

    @torch.no_grad()
    def measure(self, G: torch.nn.Module) -> dict[str, float]:
        """fid_live, class_coverage and class_kl (NaN without class labels): a LiveRow less its step."""
        batches = (G(*(x.to(self.device) for x in batch)).float() for batch in self.inputs)
        fake = extract(self.net, batches, self.device)
        result = {"fid_live": fid(self.real.features, fake.features)}
        if self.real_labels is not None and fake.logits is not None:
            stats = class_stats(fake.logits, self.real_labels, self.num_classes)
            result.update(class_coverage=stats["class_coverage"], class_kl=stats["class_kl"])
        else:
            result.update(class_coverage=float("nan"), class_kl=float("nan"))
        return result
