"""Adversarial losses and D regularizers, looked up by name (``train.loss``).

Each loss takes discriminator logits. ``d(real, fake, smoothing)`` is minimized by D on
(real, fake) logits, ``g(fake, real)`` by G on the logits of its own samples; ``real`` (D's logits
on a real batch) is passed only to a ``relativistic`` loss, which compares each fake with a real
image, and is None otherwise. ``smoothing`` is one-sided label smoothing (the real target becomes
1 - smoothing); only the cross-entropy losses accept it. WGAN needs D's weights clipped after each
step (``weight_clip``); WGAN-GP adds the gradient penalty (``gradient_penalty``). The zero-centred
R1 (reals, ``train.r1_gamma``) and R2 (fakes, ``train.r2_gamma``) penalties can be added to any loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ganops import catalog
from ganops.plugins import Registry
from ganops.runtime import Draws


@dataclass(frozen=True)
class AdversarialLoss:
    d: Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
    g: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    smoothable: bool = False  # accepts one-sided label smoothing
    weight_clip: bool = False  # clip D's weights to +-train.clip_value after each D step
    gradient_penalty: bool = False  # add train.gp_weight * (||grad D(x_hat)|| - 1)^2
    relativistic: bool = False  # g needs D's logits on a real batch, paired with the fakes


LOSSES: Registry[AdversarialLoss] = Registry(catalog.LOSSES)


def _bce_d(real: torch.Tensor, fake: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    # -[t log D(x) + (1 - t) log(1 - D(x))] - log(1 - D(G(z))) with t = 1 - smoothing, on logits
    real_term = (1 - smoothing) * F.softplus(-real) + smoothing * F.softplus(real)
    return real_term.mean() + F.softplus(fake).mean()


def _wasserstein_d(real: torch.Tensor, fake: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    return fake.mean() - real.mean()


def _wasserstein_g(fake: torch.Tensor, real: torch.Tensor | None = None) -> torch.Tensor:
    return -fake.mean()


# Non-saturating (Goodfellow et al., 2014, sec. 3): G maximizes log D(G(z)).
LOSSES.register("non_saturating")(
    AdversarialLoss(d=_bce_d, g=lambda fake, real=None: F.softplus(-fake).mean(), smoothable=True)
)

# Minimax (saturating): G minimizes log(1 - D(G(z))); weak gradients early, kept for comparison.
LOSSES.register("minimax")(
    AdversarialLoss(d=_bce_d, g=lambda fake, real=None: -F.softplus(fake).mean(), smoothable=True)
)

# Hinge (Lim & Ye, 2017; used by SNGAN and BigGAN).
LOSSES.register("hinge")(
    AdversarialLoss(
        d=lambda real, fake, smoothing=0.0: F.relu(1 - real).mean() + F.relu(1 + fake).mean(),
        g=lambda fake, real=None: -fake.mean(),
    )
)

# Least squares (Mao et al., 2017) with targets real=1, fake=0.
LOSSES.register("least_squares")(
    AdversarialLoss(
        d=lambda real, fake, smoothing=0.0: 0.5 * ((real - 1).pow(2).mean() + fake.pow(2).mean()),
        g=lambda fake, real=None: 0.5 * (fake - 1).pow(2).mean(),
    )
)

# Relativistic pairing GAN (Jolicoeur-Martineau, 2019), the loss of R3GAN (Huang et al., 2024, with
# train.r1_gamma and train.r2_gamma): D raises each real logit above its paired fake's, G the reverse.
LOSSES.register("relativistic")(
    AdversarialLoss(
        d=lambda real, fake, smoothing=0.0: F.softplus(fake - real).mean(),
        g=lambda fake, real: F.softplus(real - fake).mean(),
        relativistic=True,
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
    draws: Draws,
) -> torch.Tensor:
    """E[(||grad_x D(x_hat)|| - 1)^2] at x_hat on random lines between real and fake images.

    The mixing weights come from ``draws`` (seeded per step), so a resumed run replays them.
    """
    eps = draws.rand(real.shape[0], 1, 1, 1, device=real.device)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat, labels).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).pow(2).mean()


def zero_centred_penalty(logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """E[||grad_x D(x)||^2] at ``images`` (which must require grad): R1 (Mescheder et al., 2018) on
    real images, R2 on generated ones."""
    (grad,) = torch.autograd.grad(logits.sum(), images, create_graph=True)
    return grad.flatten(1).pow(2).sum(dim=1).mean()


@torch.no_grad()
def clip_weights(D: torch.nn.Module, value: float) -> None:
    for p in D.parameters():
        p.clamp_(-value, value)
