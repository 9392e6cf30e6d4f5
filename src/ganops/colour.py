"""Full-range YCbCr (BT.601 weights, as JPEG uses) on tensors in the project's [-1, 1] range.

Colorization keeps an image's luminance and predicts its chroma; the grey image a user has
without a model is the luminance alone. Both directions live here so that the degradation, the
network and the baseline use exactly the same numbers. All three channels come back in [-1, 1]
(Y scaled from [0, 1], Cb and Cr from [-0.5, 0.5]), so neutral grey has Cb = Cr = 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

LUMA_WEIGHTS = (0.299, 0.587, 0.114)


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """N3HW RGB -> N1HW Y, both in [-1, 1] (the weights sum to 1, so the affine maps commute).

    Also takes a NumPy array: the server, whose image has no torch, computes a colorize model's
    input with this same function."""
    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    return LUMA_WEIGHTS[0] * r + LUMA_WEIGHTS[1] * g + LUMA_WEIGHTS[2] * b


def chroma(rgb: torch.Tensor) -> torch.Tensor:
    """N3HW RGB in [-1, 1] -> N2HW (Cb, Cr) in [-1, 1]; zero for grey."""
    import torch

    r, g, b = rgb[:, 0:1], rgb[:, 1:2], rgb[:, 2:3]
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b  # the +1 offsets cancel: the rows sum to 0
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b
    return torch.cat([cb, cr], dim=1)


def to_rgb(luma: torch.Tensor, cbcr: torch.Tensor) -> torch.Tensor:
    """(Y, Cb, Cr) in [-1, 1] -> N3HW RGB in [-1, 1] (not clamped)."""
    import torch

    cb, cr = cbcr[:, 0:1], cbcr[:, 1:2]
    r = luma + 1.402 * cr
    g = luma - 0.344136 * cb - 0.714136 * cr
    b = luma + 1.772 * cb
    return torch.cat([r, g, b], dim=1)
