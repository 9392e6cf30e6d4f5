"""Train-time augmentation: horizontal flips of real images and DiffAugment (Zhao et al., 2020).

DiffAugment applies the same kinds of random, differentiable transforms to real and fake images
before D sees them (and G's gradient flows through them), which keeps D from memorizing a small
dataset. Every random draw comes from the ``Draws`` passed in, seeded per (seed, step), so a resumed
run replays the same augmentations, and under data parallelism each image of the global batch gets
its own draw whichever rank holds it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ganops.runtime import Draws

DIFF_AUGMENT = ("color", "translation", "cutout")


def hflip(x: torch.Tensor, draws: Draws) -> torch.Tensor:
    """Flip each image left-right with probability 1/2."""
    flip = draws.rand(x.shape[0], 1, 1, 1, device=x.device) < 0.5
    return torch.where(flip, x.flip(3), x)


def color(x: torch.Tensor, draws: Draws) -> torch.Tensor:
    n, dev = x.shape[0], x.device
    x = x + (draws.rand(n, 1, 1, 1, device=dev) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (draws.rand(n, 1, 1, 1, device=dev) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (draws.rand(n, 1, 1, 1, device=dev) + 0.5) + mean  # contrast


def translation(x: torch.Tensor, draws: Draws, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to ``ratio`` of its size, filling with zeros."""
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = draws.randint(-sh, sh + 1, n, 1, 1, device=x.device)
    dx = draws.randint(-sw, sw + 1, n, 1, 1, device=x.device)
    b, gy, gx = torch.meshgrid(
        torch.arange(n, device=x.device),
        torch.arange(h, device=x.device),
        torch.arange(w, device=x.device),
        indexing="ij",
    )
    gy = (gy + dy + 1).clamp(0, h + 1)
    gx = (gx + dx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])  # zeros outside the image
    return padded.permute(0, 2, 3, 1)[b, gy, gx].permute(0, 3, 1, 2).contiguous()


def cutout(x: torch.Tensor, draws: Draws, ratio: float = 0.5) -> torch.Tensor:
    """Zero a square of ``ratio`` times the image size at a random place in each image."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = draws.randint(0, h + (1 - ch % 2), n, 1, 1, device=x.device)
    ox = draws.randint(0, w + (1 - cw % 2), n, 1, 1, device=x.device)
    b, gy, gx = torch.meshgrid(
        torch.arange(n, device=x.device),
        torch.arange(ch, device=x.device),
        torch.arange(cw, device=x.device),
        indexing="ij",
    )
    gy = (gy + oy - ch // 2).clamp(0, h - 1)
    gx = (gx + ox - cw // 2).clamp(0, w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[b, gy, gx] = 0
    return x * mask.unsqueeze(1)


_OPS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: list[str], draws: Draws) -> torch.Tensor:
    """Apply the DiffAugment transforms named in ``policy`` (in DiffAugment's fixed order)."""
    for name in DIFF_AUGMENT:
        if name in policy:
            x = _OPS[name](x, draws)
    return x
