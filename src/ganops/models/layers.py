"""Pieces shared by the architectures: feature-map sizes, spectral norm, class conditioning, label sampling."""

from __future__ import annotations

import math

import torch
from torch import nn


def size_ladder(image_size: int) -> list[int]:
    """Feature-map sizes from G's first block to the image, each one twice the last or one less.

    Halving the image size (rounding up) until it is at most 7 gives the first block: 32 -> [4, 8,
    16, 32] as in DCGAN, 28 -> [7, 14, 28] (Fashion-MNIST at its own size), 48 -> [6, 12, 24, 48],
    50 -> [7, 13, 25, 50]. D walks the same ladder down.
    """
    sizes = [image_size]
    while sizes[-1] > 7:
        sizes.append(math.ceil(sizes[-1] / 2))
    return sizes[::-1]


def upsample_2x(cin: int, cout: int, target: int) -> nn.ConvTranspose2d:
    """A 4x4 stride-2 transposed conv from s to ``target`` = 2s (padding 1) or 2s - 1 (padding 2,
    output_padding 1: the same kernel with one row and column fewer)."""
    odd = target % 2
    return nn.ConvTranspose2d(cin, cout, 4, 2, 1 + odd, output_padding=odd, bias=False)


def downsample_2x(cin: int, cout: int, source: int, bias: bool) -> nn.Conv2d:
    """A 4x4 stride-2 conv from ``source`` = 2s (padding 1) or 2s - 1 (padding 2) to s."""
    return nn.Conv2d(cin, cout, 4, 2, 1 + source % 2, bias=bias)


def sn(module: nn.Module, enabled: bool) -> nn.Module:
    """Spectral normalization (Miyato et al., 2018) when ``enabled``; the module unchanged otherwise."""
    return nn.utils.parametrizations.spectral_norm(module) if enabled else module


def d_activation(dropout: float) -> list[nn.Module]:
    """D's hidden activation: LeakyReLU(0.2), then dropout when asked for."""
    return [nn.LeakyReLU(0.2, inplace=True)] + ([nn.Dropout(dropout)] if dropout > 0 else [])


class LatentClasses(nn.Module):
    """Class labels read from the first latent coordinate.

    Phi(z[:, 0]) is uniform on (0, 1) for z ~ N(0, I), so comparing it with the cumulative class
    prior draws labels from that prior: ``G(z)`` samples the whole data distribution without a
    second input, deterministically by z (what ONNX export and serving need).
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.register_buffer("cdf", torch.arange(1, num_classes + 1, dtype=torch.float32) / num_classes)

    @torch.no_grad()
    def set_prior(self, counts: torch.Tensor) -> None:
        """Match the class frequencies of the training data (counts per class)."""
        probs = counts.double() / counts.sum()
        self.cdf.copy_(probs.cumsum(0).float())
        self.cdf[-1] = 1.0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        u = 0.5 * (1 + torch.erf(z[:, 0] / math.sqrt(2)))  # (N,) uniform in (0, 1)
        return (u.unsqueeze(1) > self.cdf[:-1]).sum(1)  # (N,) int64 class ids


class ConditionalInput(nn.Module):
    """G's conditioning: z concatenated with a learned embedding of the label (latent -> 2*latent)."""

    def __init__(self, num_classes: int, latent_dim: int) -> None:
        super().__init__()
        self.classes = LatentClasses(num_classes)
        self.embed = nn.Embedding(num_classes, latent_dim)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            y = self.classes(z)
        return torch.cat([z, self.embed(y)], dim=1)  # (N, 2 * latent_dim)


class ProjectionHead(nn.Module):
    """Projection discriminator's class term (Miyato & Koyama, 2018): <embed(y), h>, added to the logit."""

    def __init__(self, num_classes: int, features: int, spectral: bool) -> None:
        super().__init__()
        self.embed = sn(nn.Embedding(num_classes, features), spectral)

    def forward(self, h: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            raise ValueError("a class-conditional discriminator needs labels y")
        return (self.embed(y) * h).sum(1)  # (N,)


def labels_for(G: nn.Module, z: torch.Tensor) -> torch.Tensor | None:
    """The labels a conditional G uses for ``z`` (None for an unconditional G)."""
    cond = getattr(G, "cond", None)
    return None if cond is None else cond.classes(z)
