"""The fully connected GAN of the classic tutorials (Goodfellow et al., 2014), for small images."""

from __future__ import annotations

import torch
from torch import nn

from ganops.models import ARCHITECTURES, ArchSpec
from ganops.models.layers import d_activation, sn


class Generator(nn.Module):
    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        hidden = spec.g_width * 8
        self.shape = (spec.channels, spec.image_size, spec.image_size)
        self.net = nn.Sequential(
            nn.Linear(spec.latent_dim, hidden),  # latent_dim -> 8w
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden, hidden * 2),  # 8w -> 16w
            nn.BatchNorm1d(hidden * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Linear(hidden * 2, spec.channels * spec.image_size**2),  # 16w -> C*H*W, in [-1, 1]
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.shape)


class Discriminator(nn.Module):
    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        hidden = spec.d_width * 8
        self.net = nn.Sequential(
            nn.Flatten(),
            sn(nn.Linear(spec.channels * spec.image_size**2, hidden * 2), spec.spectral_norm),  # C*H*W -> 16w
            *d_activation(spec.d_dropout),
            sn(nn.Linear(hidden * 2, hidden), spec.spectral_norm),  # 16w -> 8w
            *d_activation(spec.d_dropout),
            sn(nn.Linear(hidden, 1), spec.spectral_norm),  # 8w -> 1 logit
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x).flatten()


@ARCHITECTURES.register("mlp")
class MLP:
    conditional = False

    def supports(self, image_size: int) -> bool:
        return 8 <= image_size <= 64

    def sizes(self) -> str:
        return "8 to 64"

    def generator(self, spec: ArchSpec) -> nn.Module:
        return Generator(spec)

    def discriminator(self, spec: ArchSpec) -> nn.Module:
        return Discriminator(spec)
