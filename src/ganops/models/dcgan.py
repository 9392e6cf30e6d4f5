"""DCGAN (Radford et al., 2015) for any size from 16 to 256.

Shapes are written for 32x32 gray images with width w: G goes 4 -> 8 -> 16 -> 32 with (4w, 2w,
w) channels, D mirrors it. Other sizes walk ``size_ladder``: 28x28 goes 7 -> 14 -> 28 with (2w,
w) channels; each extra doubling of the size adds one block.
Options: spectral norm in D (then D has no batch norm, as in SNGAN's "standard CNN"), dropout
in D, and a class-conditional variant (label embedding in G, projection in D).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrize import is_parametrized

from ganops.models import ARCHITECTURES, ArchSpec, ConvArchitecture
from ganops.models.layers import (
    ConditionalInput,
    ProjectionHead,
    d_activation,
    downsample_2x,
    size_ladder,
    sn,
    upsample_2x,
)


def dcgan_init(module: nn.Module) -> None:
    """The paper's initialization: conv weights ~ N(0, 0.02), BN weights ~ N(1, 0.02), BN bias 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        # under spectral norm, ``weight`` is computed: initialize the stored original instead
        weight = module.parametrizations.weight.original if is_parametrized(module) else module.weight
        nn.init.normal_(weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        ladder = size_ladder(spec.image_size)  # [4, 8, 16, 32]
        width = spec.g_width * 2 ** (len(ladder) - 2)
        self.cond = ConditionalInput(spec.num_classes, spec.latent_dim) if spec.conditional else None
        z_dim = spec.latent_dim * (2 if spec.conditional else 1)
        layers: list[nn.Module] = [
            # z (+ label embedding): z_dim x 1 x 1 -> (4w) x 4 x 4
            nn.ConvTranspose2d(z_dim, width, ladder[0], 1, 0, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        for target in ladder[1:-1]:
            # (4w) x 4 x 4 -> (2w) x 8 x 8 -> (w) x 16 x 16
            layers += [
                upsample_2x(width, width // 2, target),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(inplace=True),
            ]
            width //= 2
        # (w) x 16 x 16 -> channels x 32 x 32, in [-1, 1]
        layers += [upsample_2x(width, spec.channels, ladder[-1]), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.latent_dim = spec.latent_dim
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = z if self.cond is None else self.cond(z, y)  # (N, z_dim)
        return self.net(h.view(z.shape[0], -1, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        ladder = size_ladder(spec.image_size)[::-1]  # [32, 16, 8, 4]
        width = spec.d_width
        use_bn = not spec.spectral_norm
        layers: list[nn.Module] = [
            # channels x 32 x 32 -> (w) x 16 x 16; no BN on the input layer, as in the paper
            sn(downsample_2x(spec.channels, width, ladder[0], bias=not use_bn), spec.spectral_norm),
            *d_activation(spec.d_dropout),
        ]
        for source in ladder[1:-1]:
            # (w) x 16 x 16 -> (2w) x 8 x 8 -> (4w) x 4 x 4
            layers.append(sn(downsample_2x(width, width * 2, source, bias=not use_bn), spec.spectral_norm))
            layers += [nn.BatchNorm2d(width * 2)] if use_bn else []
            layers += d_activation(spec.d_dropout)
            width *= 2
        self.net = nn.Sequential(*layers)
        # (4w) x 4 x 4 -> 1 x 1 x 1: one logit per image
        self.out = sn(nn.Conv2d(width, 1, ladder[-1], 1, 0, bias=False), spec.spectral_norm)
        self.project = (
            ProjectionHead(spec.num_classes, width, spec.spectral_norm) if spec.conditional else None
        )
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.net(x)  # (4w) x 4 x 4
        logit = self.out(h).flatten()  # (N,)
        if self.project is not None:
            logit = logit + self.project(h.sum(dim=(2, 3)), y)  # + <embed(y), sum-pooled h>
        return logit


@ARCHITECTURES.register("dcgan")
class DCGAN(ConvArchitecture):
    generator_class, discriminator_class = Generator, Discriminator
