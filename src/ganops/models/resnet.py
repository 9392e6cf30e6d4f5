"""SNGAN-style residual G and D (Miyato et al., 2018, appendix; Gulrajani et al., 2017).

G: linear z -> (4w) x 4 x 4, then one up-block per doubling (BN-ReLU-up-conv3-BN-ReLU-conv3 with a
1x1 shortcut), then BN-ReLU-conv3-tanh. D: an "optimized" first down-block, down-blocks
(ReLU-conv3-ReLU-conv3-avgpool, 1x1 shortcut), ReLU, global sum pooling, linear (+ projection).
Widths halve in G and double in D like DCGAN, so the CPU cost stays in DCGAN's range. Shapes are
written for 32x32 images and width w; sizes 16 to 256 add or drop blocks and walk ``size_ladder``
(28x28: 7 -> 14 -> 28), odd sizes by nearest upsampling to the size and ceil-mode pooling.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ganops.models import ARCHITECTURES, ArchSpec, ConvArchitecture
from ganops.models.layers import ConditionalInput, ProjectionHead, size_ladder, sn


class UpBlock(nn.Module):
    def __init__(self, cin: int, cout: int, size: int) -> None:
        super().__init__()
        self.size = size  # 2s, or 2s - 1 on an odd step of the ladder
        self.bn1, self.conv1 = nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(cout), nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # cin x s x s -> cout x size x size
        h = F.interpolate(F.relu(self.bn1(x)), size=self.size, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return h + self.skip(F.interpolate(x, size=self.size, mode="nearest"))


class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int, spectral: bool, first: bool) -> None:
        super().__init__()
        self.first = first  # the "optimized" block: no ReLU on the input image
        self.conv1 = sn(nn.Conv2d(cin, cout, 3, 1, 1), spectral)
        self.conv2 = sn(nn.Conv2d(cout, cout, 3, 1, 1), spectral)
        self.skip = sn(nn.Conv2d(cin, cout, 1), spectral)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # cin x s x s -> cout x ceil(s/2) x ceil(s/2)
        h = x if self.first else F.relu(x)
        h = _halve(self.conv2(F.relu(self.conv1(h))))
        shortcut = self.skip(_halve(x)) if self.first else _halve(self.skip(x))
        return h + shortcut


def _halve(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling; an odd last row/column is averaged on its own (ceil mode, no padding)."""
    return F.avg_pool2d(x, 2, ceil_mode=True)


class Generator(nn.Module):
    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        ladder = size_ladder(spec.image_size)  # [4, 8, 16, 32]
        width = spec.g_width * 2 ** (len(ladder) - 2)
        self.cond = ConditionalInput(spec.num_classes, spec.latent_dim) if spec.conditional else None
        z_dim = spec.latent_dim * (2 if spec.conditional else 1)
        self.latent_dim, self.width0, self.size0 = spec.latent_dim, width, ladder[0]
        self.fc = nn.Linear(z_dim, width * ladder[0] ** 2)  # z -> (4w) x 4 x 4
        blocks = []
        for size in ladder[1:]:
            # (4w) x 4 x 4 -> (2w) x 8 x 8 -> (w) x 16 x 16 -> (w/2) x 32 x 32
            blocks.append(UpBlock(width, max(width // 2, 1), size))
            width = max(width // 2, 1)
        self.blocks = nn.Sequential(*blocks)
        # (w/2) x 32 x 32 -> channels x 32 x 32, in [-1, 1]
        self.out = nn.Sequential(
            nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, spec.channels, 3, 1, 1), nn.Tanh()
        )

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = z if self.cond is None else self.cond(z, y)  # (N, z_dim)
        h = self.fc(h).view(z.shape[0], self.width0, self.size0, self.size0)
        return self.out(self.blocks(h))


class Discriminator(nn.Module):
    def __init__(self, spec: ArchSpec) -> None:
        super().__init__()
        n = len(size_ladder(spec.image_size)) - 1  # halvings down to the first block's size
        width, blocks = spec.d_width, []
        cin = spec.channels
        for i in range(n):
            # channels x 32 x 32 -> (w) x 16 x 16 -> (2w) x 8 x 8 -> (4w) x 4 x 4
            blocks.append(DownBlock(cin, width, spec.spectral_norm, first=i == 0))
            if spec.d_dropout > 0:
                blocks.append(nn.Dropout(spec.d_dropout))
            cin, width = width, width * 2
        self.blocks = nn.Sequential(*blocks)
        self.linear = sn(nn.Linear(cin, 1), spec.spectral_norm)  # (4w) -> 1 logit
        self.project = ProjectionHead(spec.num_classes, cin, spec.spectral_norm) if spec.conditional else None

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))  # (N, 4w): global sum pooling
        logit = self.linear(h).flatten()  # (N,)
        if self.project is not None:
            logit = logit + self.project(h, y)
        return logit


@ARCHITECTURES.register("resnet")
class ResNet(ConvArchitecture):
    generator_class, discriminator_class = Generator, Discriminator
