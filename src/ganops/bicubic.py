"""Bicubic upscaling by a whole factor, in NumPy: the classical method super-resolution is scored
against, through the superres card's baseline (ganops.baselines), which the evaluate stage and the
server's baseline view (serve/restore.py, no torch) both run, so the server shows exactly the image
that was scored.

It is the bicubic of torch's ``F.interpolate(mode="bicubic", align_corners=False)`` and OpenCV's
INTER_CUBIC: Keys' cubic convolution with a = -0.75, pixel centres aligned, the edge pixels repeated
past the border. Each output is four weighted taps summed elementwise (no matrix product), so a
pixel's value does not depend on the batch or the image it is computed with.
"""

from __future__ import annotations

import math

import numpy as np

A = -0.75  # Keys' parameter, as torch and OpenCV use it (Pillow's bicubic uses -0.5)


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """``image`` (..., H, W) float in [-1, 1] -> (..., H * factor, W * factor) float32, clamped to
    [-1, 1]: bicubic overshoots near edges, and the clamp keeps the result a valid image."""
    if int(factor) != factor or factor < 1:
        raise ValueError(f"bicubic upscale: factor must be a whole number >= 1, got {factor!r}")
    if image.ndim < 2:
        raise ValueError(f"bicubic upscale: expected (..., H, W), got shape {image.shape}")
    high = _along(_along(np.asarray(image, dtype=np.float32), int(factor), axis=-2), int(factor), axis=-1)
    return np.clip(high, -1.0, 1.0, out=high)


def _along(values: np.ndarray, factor: int, axis: int) -> np.ndarray:
    """Upscale one axis. Output ``j * factor + p`` is centred at input ``j + (p + 0.5) / factor - 0.5``,
    so each phase ``p`` weighs the same four neighbours of every ``j`` alike: four slices of the input
    with its edge pixels repeated twice, scaled and summed in float32 (in place: the server upscales
    images of millions of pixels)."""
    n = values.shape[axis]
    edges = [(0, 0)] * values.ndim
    edges[axis] = (2, 2)
    padded = np.moveaxis(np.pad(values, edges, mode="edge"), axis, -1)
    shape = list(values.shape)
    shape[axis] = n * factor
    out = np.empty(shape, np.float32)
    high = np.moveaxis(out, axis, -1)
    tap = np.empty(high.shape[:-1] + (n,), np.float32)
    for phase in range(factor):
        centre = (phase + 0.5) / factor - 0.5
        left = math.floor(centre)  # -1 or 0
        t = centre - left
        dst = high[..., phase::factor]
        for k, weight in enumerate((_far(t + 1), _near(t), _near(1 - t), _far(2 - t))):
            start = left - 1 + k + 2  # input j + left - 1 + k, in the padded input
            np.multiply(padded[..., start : start + n], np.float32(weight), out=tap)
            if k == 0:
                dst[...] = tap
            else:
                dst += tap
    return out


def _near(x: float) -> float:
    """The kernel for |x| <= 1."""
    return ((A + 2) * x - (A + 3)) * x * x + 1


def _far(x: float) -> float:
    """The kernel for 1 < |x| < 2."""
    return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A
