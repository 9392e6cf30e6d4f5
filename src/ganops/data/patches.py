"""``data.crop: random_patches``: square patches cut from photos at native resolution.

Restoration tasks (super-resolution, inpainting, colorization) learn from detail that resizing a
whole photo to ``image_size`` would destroy; a few dozen large photos give thousands of patches
instead. The sources split the files into train and test first (by image, as in resize mode),
then each file is decoded at native resolution (data/images.py: shorter side capped at
``data.native_max_side``) and ``data.patches_per_image`` squares of ``image_size`` are cut at random
positions, so no test patch comes from a training photo.

The positions come from a numpy Generator keyed by (PATCH_KEY, split, the file's index among its
split's files): PCG64 seeded through SeedSequence gives the same integers on every machine and
whatever the thread count, and prepare does not read the global ``seed`` (dvc.yaml would rerun it
on every seed change). The index is counted before unreadable files are skipped, so skipping one
file does not move the patches of the others.

A photo smaller than ``image_size`` on either side is refused rather than upscaled: upscaled
pixels would teach a super-resolution model that blur is the sharp target.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganops.data.images import NATIVE_MAX_SIDE, DecodeReport, cap_longer_side, decode
from ganops.errors import DataError

PATCH_KEY = 0x7A7C4E5  # a constant of this module, so these streams differ from any other seeded one
SPLIT_KEYS = {"train": 0, "test": 1}


def patch_rng(split: str, index: int) -> np.random.Generator:
    """The Generator that places the patches of the ``index``-th file of ``split``."""
    return np.random.default_rng([PATCH_KEY, SPLIT_KEYS[split], index])


def cut_patches(image: np.ndarray, size: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` (C, size, size) squares of a (C, H, W) image, top-left corners uniform over the image."""
    _, height, width = image.shape
    tops = rng.integers(0, height - size + 1, size=count)
    lefts = rng.integers(0, width - size + 1, size=count)
    return np.stack(
        [image[:, top : top + size, left : left + size] for top, left in zip(tops, lefts, strict=True)]
    )


def index_in_split(test: np.ndarray) -> np.ndarray:
    """For each file, its position among the files of its own split (train or test)."""
    return np.where(test, np.cumsum(test) - 1, np.cumsum(~test) - 1)


def decode_patches(
    paths: list[Path],
    test: np.ndarray,
    size: int,
    per_image: int,
    on_corrupt: str,
    report: DecodeReport,
    background: tuple[int, int, int],
    whole_side: int | None = None,
    native_side: int = NATIVE_MAX_SIDE,
) -> tuple[np.ndarray, list[int], list[np.ndarray]]:
    """(len(kept) * per_image, 3, size, size) uint8 patches, grouped by file, the indices of the
    files kept (readable ones), and, given ``whole_side``, each kept test file whole, its longer side
    shrunk to at most ``whole_side`` (what the restoration tasks are scored on). Files smaller than
    ``size`` stop the stage, all named at once."""
    from ganops.progress import Progress

    positions = index_in_split(test)
    patches, kept, too_small, wholes = [], [], [], []
    with Progress(len(paths), "decode", unit="img") as progress:
        for i, path in enumerate(paths):
            image = decode(path, size, on_corrupt, report, background, native=native_side)
            progress.update()
            if image is None:
                continue
            if min(image.shape[1:]) < size:
                too_small.append(f"{path} ({image.shape[2]}x{image.shape[1]})")
                continue
            rng = patch_rng("test" if test[i] else "train", int(positions[i]))
            patches.append(cut_patches(image, size, per_image, rng))
            kept.append(i)
            if test[i] and whole_side is not None:
                wholes.append(cap_longer_side(image, whole_side))
    if too_small:
        raise DataError(
            f"data.crop=random_patches: {len(too_small)} image(s) are smaller than data.image_size="
            f"{size} px on a side, e.g. {', '.join(too_small[:5])}; they are not upscaled (that would "
            "train on blur). Remove them, lower data.image_size, or use data.crop=resize"
        )
    if not patches:
        return np.zeros((0, 3, size, size), dtype=np.uint8), kept, wholes
    return np.concatenate(patches), kept, wholes
