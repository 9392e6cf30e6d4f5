"""Adversarial losses and D regularizers, looked up by name (``train.loss``).

Each loss takes discriminator logits. ``d(real, fake, smoothing)`` is minimized by D on
(real, fake) logits, ``g(fake)`` by G on the logits of its own samples. ``smoothing`` is
one-sided label smoothing (the real target becomes 1 - smoothing); only the cross-entropy
losses accept it. WGAN needs D's weights clipped after each step (``weight_clip``); WGAN-GP
adds the gradient penalty (``gradient_penalty``). The R1 penalty (``train.r1_gamma``) can be
added to any loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ganops.plugins import Registry


@dataclass(frozen=True)
class AdversarialLoss:
    d: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
    g: Callable[[torch.Tensor], torch.Tensor]
    smoothable: bool = False  # accepts one-sided label smoothing
    weight_clip: bool = False  # clip D's weights to +-train.clip_value after each D step
    gradient_penalty: bool = False  # add train.gp_weight * (||grad D(x_hat)|| - 1)^2


LOSSES: Registry[AdversarialLoss] = Registry("loss")


def _bce_d(real: torch.Tensor, fake: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    # -[t log D(x) + (1 - t) log(1 - D(x))] - log(1 - D(G(z))) with t = 1 - smoothing, on logits
    real_term = (1 - smoothing) * F.softplus(-real) + smoothing * F.softplus(real)
    return real_term.mean() + F.softplus(fake).mean()


def _wasserstein_d(real: torch.Tensor, fake: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    return fake.mean() - real.mean()


def _wasserstein_g(fake: torch.Tensor) -> torch.Tensor:
    return -fake.mean()


# Non-saturating (Goodfellow et al., 2014, sec. 3): G maximizes log D(G(z)).
LOSSES.register("non_saturating")(
    AdversarialLoss(d=_bce_d, g=lambda fake: F.softplus(-fake).mean(), smoothable=True)
)

# Minimax (saturating): G minimizes log(1 - D(G(z))); weak gradients early, kept for comparison.
LOSSES.register("minimax")(
    AdversarialLoss(d=_bce_d, g=lambda fake: -F.softplus(fake).mean(), smoothable=True)
)

# Hinge (Lim & Ye, 2017; used by SNGAN and BigGAN).
LOSSES.register("hinge")(
    AdversarialLoss(
        d=lambda real, fake, smoothing=0.0: F.relu(1 - real).mean() + F.relu(1 + fake).mean(),
        g=lambda fake: -fake.mean(),
    )
)

# Least squares (Mao et al., 2017) with targets real=1, fake=0.
LOSSES.register("least_squares")(
    AdversarialLoss(
        d=lambda real, fake, smoothing=0.0: 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean()),
        g=lambda fake: 0.5 * (fake - 1).pow(2).mean(),
    )
)

# Wasserstein GAN (Arjovsky et al., 2017): a critic kept Lipschitz by clipping its weights.
LOSSES.register("wgan")(AdversarialLoss(d=_wasserstein_d, g=_wasserstein_g, weight_clip=True))

# WGAN-GP (Gulrajani et al., 2017): the critic kept Lipschitz by a gradient penalty instead.
LOSSES.register("wgan_gp")(AdversarialLoss(d=_wasserstein_d, g=_wasserstein_g, gradient_penalty=True))


def gradient_penalty(
    D: torch.nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    labels: torch.Tensor | None,
    generator: torch.Generator,
) -> torch.Tensor:
    """E[(||grad_x D(x_hat)|| - 1)^2] at x_hat on random lines between real and fake images.

    The mixing weights come from ``generator`` (seeded per step), so a resumed run replays them.
    """
    eps = torch.rand(real.shape[0], 1, 1, 1, generator=generator).to(real.device)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat, labels).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def r1_penalty(logits_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """R1 (Mescheder et al., 2018): E[||grad_x D(x)||^2] on real images (``real`` must require grad)."""
    (grad,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()


@torch.no_grad()
def clip_weights(D: torch.nn.Module, value: float) -> None:
    for p in D.parameters():
        p.clamp_(-value, value)
