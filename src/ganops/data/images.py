"""Decoding image files into what a person sees, then resizing: shorter side to the target, centre crop.

Used by the sources that read folders of image files (celeba, imagefolder). With
``data.crop: random_patches`` the resizing is skipped: the file is kept at its native resolution
(shorter side capped at NATIVE_MAX_SIDE) and data/patches.py cuts it. Each file goes
through the same steps: first frame of an animation, EXIF orientation applied (phone photos),
16-bit samples scaled to 8 bits, transparency (alpha, LA, palette or tRNS) composited onto
``data.background``, any other mode (CMYK, YCbCr, 1-bit, palette) converted to RGB. An unreadable
file, or one too large to decode safely (a decompression bomb), is either skipped and counted or
rejected with its name (``data.on_corrupt``).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ganops.errors import DataError

log = logging.getLogger(__name__)

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}
SIXTEEN_BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}
# Larger images are refused before their pixels are decoded: 128 MP is above what cameras write by
# default (a 108 MP phone photo passes) and already costs ~400 MB as RGB; beyond it a file is almost
# always a decompression bomb (a few bytes that claim billions of pixels). PIL's own check, which
# warns at 89 MP and fails at 179 MP, is replaced by this one below 179 MP.
MAX_PIXELS = 128 * 2**20
WHITE = (255, 255, 255)
# random_patches keeps native resolution up to this shorter side (pixels; data.native_max_side's
# default); larger photos are first downscaled to it (Lanczos), so a patch still shows a recognisable
# part of the scene rather than a few blades of grass of a 48 MP photo, and a folder of phone photos
# fits in memory while it is cut. The manifest records the cap and how many images it downscaled.
NATIVE_MAX_SIDE = 1024


@dataclass
class DecodeReport:
    skipped: list[str] = field(default_factory=list)  # unreadable files (on_corrupt: skip)
    all_gray: bool = True
    downscaled: int = 0  # native-resolution decodes shrunk to NATIVE_MAX_SIDE (random_patches)


class TooLarge(ValueError):
    """An image whose header claims more than MAX_PIXELS pixels."""


def is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in EXTENSIONS and not path.name.startswith(".")


def image_files(folder: Path, recursive: bool = False) -> list[Path]:
    """Image files in ``folder`` (and below it), sorted. Hidden files and folders are left out, as the
    raw-data fingerprint leaves them out: macOS's ``._name.png`` companions are not images, and a file
    prepare reads must be one whose change reruns it."""
    found = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p
        for p in found
        if is_image(p) and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )


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


def cap_shorter_side(image, limit: int):
    """Scale down (Lanczos, antialiased) so the shorter side is at most ``limit``; smaller images are kept."""
    from PIL import Image

    w, h = image.size
    if min(w, h) <= limit:
        return image
    scale = limit / min(w, h)
    size = (max(limit, round(w * scale)), max(limit, round(h * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def cap_longer_side(image: np.ndarray, limit: int) -> np.ndarray:
    """A (C, H, W) uint8 image scaled down (Lanczos, antialiased) so its longer side is at most ``limit``."""
    from PIL import Image

    _, h, w = image.shape
    if max(h, w) <= limit:
        return image
    scale = limit / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    channels = [Image.fromarray(plane).resize(size, Image.Resampling.LANCZOS) for plane in image]
    return np.stack([np.asarray(plane, dtype=np.uint8) for plane in channels])


def has_transparency(image) -> bool:
    return image.mode in ("RGBA", "RGBa", "LA", "La", "PA") or "transparency" in image.info


def eight_bit(image):
    """16-bit (or 32-bit integer) gray to 8-bit "L" by scaling 0..65535 to 0..255, which keeps every
    level's order; PIL's own convert would clip everything above 255 to white."""
    from PIL import Image

    values = np.asarray(image, dtype=np.float64)
    return Image.fromarray((values.clip(0, 65535) / 257.0).round().astype(np.uint8), mode="L")


def to_rgb(image, background: tuple[int, int, int] = WHITE):
    """What a viewer shows: an RGB image, transparent parts filled with ``background``."""
    from PIL import Image, ImageOps

    image = ImageOps.exif_transpose(image)  # a copy, upright; frame 0 of an animation
    if image.mode in SIXTEEN_BIT_MODES:
        image = eight_bit(image)
    if has_transparency(image):
        rgba = image.convert("RGBA")  # palette, LA and tRNS transparency all become alpha
        canvas = Image.new("RGBA", rgba.size, (*background, 255))
        return Image.alpha_composite(canvas, rgba).convert("RGB")
    return image.convert("RGB")  # CMYK (Adobe-inverted JPEGs are handled by the decoder), YCbCr, P, 1, L, F


def open_checked(source, max_pixels: int = MAX_PIXELS, formats: tuple[str, ...] | None = None):
    """Open ``source`` (a path or a binary file object; reads the header only), refusing images
    past ``max_pixels`` before decoding. ``formats``: the PIL format names accepted (None: any).
    The server opens uploads here with its own, lower limit."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the limit is checked below
        image = Image.open(source, formats=formats)
    width, height = image.size
    if width * height > max_pixels:
        image.close()
        raise TooLarge(
            f"{width}x{height} = {width * height:,} pixels is over the limit of {max_pixels:,} "
            "(a likely decompression bomb if the file is small)"
        )
    return image


def decode(
    path: Path,
    size: int,
    on_corrupt: str,
    report: DecodeReport,
    background: tuple[int, int, int] = WHITE,
    native: int | None = None,
) -> np.ndarray | None:
    """(3, size, size) uint8 RGB, or None for a skipped unreadable file. ``native``: (3, H, W) at the
    file's own resolution instead, the shorter side capped at ``native`` px (random_patches)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open_checked(path) as image:
            # JPEGs decode at 1/2, 1/4 or 1/8 scale when that still covers ``size`` (DCT scaling):
            # 0.80 -> 0.15 s per 12 MP phone photo at size 64. A no-op for other formats.
            stored = min(image.size)  # before draft() shrinks it
            target = native or size
            image.draft("RGB", (target, target))
            image.load()
            gray = image.mode in GRAY_MODES and not (has_transparency(image) and len(set(background)) > 1)
            rgb = to_rgb(image, background)
            if native:
                rgb = cap_shorter_side(rgb, native)
                report.downscaled += min(rgb.size) < stored
            else:
                rgb = resize_center_crop(rgb, size)
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,  # PIL's hard limit, past MAX_PIXELS anyway
        OSError,
        SyntaxError,
        ValueError,
    ) as err:
        if on_corrupt == "fail":
            raise DataError(
                f"{path}: cannot read this image ({err}); remove or replace it, or set data.on_corrupt: skip"
            ) from None
        report.skipped.append(str(path))
        return None
    report.all_gray &= gray
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def decode_all(
    paths: list[Path],
    size: int,
    on_corrupt: str,
    report: DecodeReport,
    background: tuple[int, int, int] = WHITE,
) -> tuple[np.ndarray, list[int]]:
    """Decode ``paths``; returns (N, 3, size, size) uint8 and the indices of the files kept."""
    from ganops.progress import Progress

    images, kept = [], []
    with Progress(len(paths), "decode", unit="img") as progress:
        for i, path in enumerate(paths):
            array = decode(path, size, on_corrupt, report, background)
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
