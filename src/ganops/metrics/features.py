"""Feature sets: what every metric is computed from (features and, for the domain net, class logits)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Features:
    features: torch.Tensor  # (N, D) float32, CPU
    logits: torch.Tensor | None = None  # (N, K) class logits when the feature net is a classifier

    def __len__(self) -> int:
        return len(self.features)

    def subset(self, n: int) -> Features:
        return Features(self.features[:n], None if self.logits is None else self.logits[:n])

    def state_dict(self) -> dict:
        return {
            "features": self.features,
            "logits": self.logits if self.logits is not None else torch.empty(0),
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> Features:
        logits = state["logits"]
        return cls(state["features"], logits if logits.numel() else None)


@torch.no_grad()
def extract(net: nn.Module, batches: Iterable[torch.Tensor], device: torch.device | str) -> Features:
    """Run ``net`` over image batches (float in [-1, 1]).

    ``net`` returns features, or (features, logits) for a classifier such as the domain network.
    """
    feats, logits = [], []
    for images in batches:
        out = net(images.to(device).float())
        f, lg = out if isinstance(out, tuple) else (out, None)
        feats.append(f.float().cpu())
        if lg is not None:
            logits.append(lg.float().cpu())
    return Features(torch.cat(feats), torch.cat(logits) if logits else None)


class DomainFeaturesAndLogits(nn.Module):
    """The domain network as a feature net: images -> (penultimate features, class logits).

    A label-free evaluator has no class head: it returns the features alone (no logits, so the
    metrics that need classes are left out)."""

    def __init__(self, classifier: nn.Module) -> None:
        super().__init__()
        self.classifier = classifier.eval()

    def forward(self, images: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        h = self.classifier.features(images)  # (N, feature_dim)
        if self.classifier.head is None:
            return h
        return h, self.classifier.head(h)  # (N, num_classes)
