"""Adversarial losses, looked up by name (``train.loss``).

Each takes discriminator logits. ``d`` is minimized by D on (real, fake) logits, ``g`` by G on
the logits of its own samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ganops.plugins import Registry


@dataclass(frozen=True)
class AdversarialLoss:
    d: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    g: Callable[[torch.Tensor], torch.Tensor]


LOSSES: Registry[AdversarialLoss] = Registry("loss")


def _bce_d(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    # log D(x) + log(1 - D(G(z))), written on logits for numerical stability
    return F.softplus(-real).mean() + F.softplus(fake).mean()


# Non-saturating (Goodfellow et al., 2014, sec. 3): G maximizes log D(G(z)).
LOSSES.register("non_saturating")(AdversarialLoss(d=_bce_d, g=lambda fake: F.softplus(-fake).mean()))

# Minimax (saturating): G minimizes log(1 - D(G(z))); weak gradients early, kept for comparison.
LOSSES.register("minimax")(AdversarialLoss(d=_bce_d, g=lambda fake: -F.softplus(fake).mean()))

# Hinge (Lim & Ye, 2017; used by SNGAN and BigGAN).
LOSSES.register("hinge")(
    AdversarialLoss(
        d=lambda real, fake: F.relu(1 - real).mean() + F.relu(1 + fake).mean(),
        g=lambda fake: -fake.mean(),
    )
)

# Least squares (Mao et al., 2017) with targets real=1, fake=0.
LOSSES.register("least_squares")(
    AdversarialLoss(
        d=lambda real, fake: 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean()),
        g=lambda fake: 0.5 * (fake - 1).pow(2).mean(),
    )
)
