"""OpenCV's Telea inpainting (fast marching) of 8-bit pixels: the classical method inpainting is
scored against, through the inpaint card's baseline (ganops.baselines), which the evaluate stage and
the server's baseline view (serve/restore.py, no torch) both run, so both fill the same holes the same way.
"""

from __future__ import annotations

import numpy as np

from ganops.errors import GanopsError


class OpenCVMissing(GanopsError):
    """opencv-python-headless, which Telea's inpainting needs, is not installed."""


RADIUS = 3  # pixels around a hole that Telea weighs (OpenCV's inpaintRadius)


def telea_fill(pixels: np.ndarray, holes: np.ndarray, radius: int = RADIUS) -> np.ndarray:
    """``pixels`` (H, W, C) uint8 with 1 or 3 channels in RGB order, with every pixel where ``holes``
    (H, W) is true filled from around it; the others come back unchanged."""
    try:
        import cv2  # lazy: OpenCV takes a noticeable time to import and only this baseline needs it
    except ImportError:
        raise OpenCVMissing(
            "OpenCV's Telea inpainting needs OpenCV: `pip install -c requirements.lock opencv-python-headless`"
        ) from None
    holes = np.asarray(holes, dtype=bool)
    order = slice(None, None, -1) if pixels.shape[2] == 3 else slice(None)  # OpenCV's colour order is BGR
    bgr = np.ascontiguousarray(pixels[..., order])
    filled = cv2.inpaint(bgr, holes.astype(np.uint8), radius, cv2.INPAINT_TELEA).reshape(pixels.shape)
    return np.where(holes[..., None], filled[..., order], pixels)
