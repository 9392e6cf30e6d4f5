"""Classical baselines: what a user has without a GAN, on the model's own input.

Each is one NumPy function ``(inputs, channels, scale) -> outputs``: ``inputs`` the model's input
batch as its task card encodes it (float32 NCHW in [-1, 1]), the result the image it stands in for
(``channels`` channels, ``scale`` times the input's size), float32 in [-1, 1]. The evaluate stage
scores these outputs beside the GAN's and the server's baseline route returns them as PNGs, through
the same function, so what a user sees is what was scored. No torch; NumPy (and OpenCV for Telea)
load on the first call, so the params validator, which reads the cards, stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


def bicubic(inputs: np.ndarray, channels: int, scale: int) -> np.ndarray:
    """Bicubic upscaling by ``scale`` (ganops.bicubic: torch's and OpenCV's a = -0.75), clamped."""
    from ganops import bicubic as cubic

    return cubic.upscale(inputs, scale)


def telea(inputs: np.ndarray, channels: int, scale: int) -> np.ndarray:
    """OpenCV's Telea inpainting (ganops.telea) of the image channels inside the mask (the last
    channel, 1 = hole). OpenCV works on 8-bit pixels, so the filled pixels carry 8-bit rounding; the
    known pixels are the input's, bit for bit."""
    import numpy as np

    from ganops.telea import telea_fill

    image, hole = inputs[:, :-1].astype(np.float32), inputs[:, -1] > 0.5
    pixels = np.clip(np.round((image + 1) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
    filled = np.stack([telea_fill(p, h) for p, h in zip(pixels, hole, strict=True)]).transpose(0, 3, 1, 2)
    return np.where(hole[:, None], filled.astype(np.float32) / np.float32(127.5) - 1, image)


def grey(inputs: np.ndarray, channels: int, scale: int) -> np.ndarray:
    """The luminance input repeated to ``channels``: equal R, G and B carry no chroma, the floor any
    colorizer must beat."""
    import numpy as np

    return np.repeat(inputs.astype(np.float32), channels, axis=1)


def identity(inputs: np.ndarray, channels: int, scale: int) -> np.ndarray:
    """The input itself: what a user has when nothing translates it."""
    import numpy as np

    return inputs.astype(np.float32)
