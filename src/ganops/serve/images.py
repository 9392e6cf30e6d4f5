"""Encode generated images (float32 (n, C, H, W) in [-1, 1]) as PNG grids, PNG lists or .npy."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
from PIL import Image


def to_uint8(images: np.ndarray) -> np.ndarray:
    """(n, C, H, W) in [-1, 1] -> (n, H, W, C) uint8, rounded like torchvision's save_image."""
    unit = (np.clip(images, -1.0, 1.0) + 1.0) / 2.0
    return np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)


def grid(images: np.ndarray, padding: int = 2) -> np.ndarray:
    """Tile images into a near-square grid (nrow = ceil(sqrt(n))), like torchvision's make_grid."""
    pixels = to_uint8(images)
    n, h, w, c = pixels.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    out = np.zeros((rows * (h + padding) + padding, cols * (w + padding) + padding, c), np.uint8)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = padding + r * (h + padding), padding + k * (w + padding)
        out[y : y + h, x : x + w] = pixels[i]
    return out


def png_bytes(pixels: np.ndarray) -> bytes:
    """(H, W, C) uint8 -> PNG; one channel is written as grayscale."""
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_grid(images: np.ndarray) -> bytes:
    return png_bytes(grid(images))


def png_list_base64(images: np.ndarray) -> list[str]:
    return [base64.b64encode(png_bytes(p)).decode("ascii") for p in to_uint8(images)]


def npy_bytes(images: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(images, dtype=np.float32), allow_pickle=False)
    return buffer.getvalue()
