"""Decoding image files: shorter side resized to the target, center crop, channel conversion.

Used by the sources that read folders of image files (celeba, imagefolder). An unreadable file
is either skipped and counted or rejected with its name (``data.on_corrupt``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ganops.errors import DataError

log = logging.getLogger(__name__)

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


@dataclass
class DecodeReport:
    skipped: list[str] = field(default_factory=list)  # unreadable files (on_corrupt: skip)
    all_gray: bool = True


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in EXTENSIONS


def resize_center_crop(image, size: int):
    """Scale so the shorter side is ``size`` (Lanczos, antialiased), then crop the centre square."""
    from PIL import Image

    w, h = image.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), Image.Resampling.LANCZOS)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    return image.crop((left, top, left + size, top + size))


def decode(path: Path, size: int, on_corrupt: str, report: DecodeReport) -> np.ndarray | None:
    """(3, size, size) uint8 RGB, or None for a skipped unreadable file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            report.all_gray &= image.mode in GRAY_MODES
            rgb = resize_center_crop(image.convert("RGB"), size)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        if on_corrupt == "fail":
            raise DataError(
                f"{path}: cannot read this image ({err}); remove or replace it, or set data.on_corrupt: skip"
            ) from None
        report.skipped.append(str(path))
        return None
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def decode_all(
    paths: list[Path], size: int, on_corrupt: str, report: DecodeReport
) -> tuple[np.ndarray, list[int]]:
    """Decode ``paths``; returns (N, 3, size, size) uint8 and the indices of the files kept."""
    from ganops.progress import Progress

    images, kept = [], []
    with Progress(len(paths), "decode", unit="img") as progress:
        for i, path in enumerate(paths):
            array = decode(path, size, on_corrupt, report)
            if array is not None:
                images.append(array)
                kept.append(i)
            progress.update()
    if not images:
        return np.zeros((0, 3, size, size), dtype=np.uint8), kept
    return np.stack(images), kept


def convert_channels(images: np.ndarray, channels: int | None) -> np.ndarray:
    """(N, C, H, W) uint8 to ``channels`` (1: ITU-R 601 luma; 3: gray repeated); None keeps C."""
    have = images.shape[1]
    if channels is None or channels == have:
        return images
    if channels == 3 and have == 1:
        return np.repeat(images, 3, axis=1)
    if channels == 1 and have == 3:
        luma = np.tensordot(np.array([0.299, 0.587, 0.114]), images.astype(np.float64), axes=([0], [1]))
        return luma.round().clip(0, 255).astype(np.uint8)[:, None]
    raise DataError(f"data.channels: cannot convert {have}-channel images to {channels}; use 1 or 3")
