"""What every raw data source shares: the dataset it returns, the options it reads, the registry
it joins and the fixed held-out mask.

The source modules (data/sources.py's IDX sources, data/cifar.py, data/digits.py,
data/folders.py) import this module and register themselves in ``SOURCES``; data/sources.py
imports them all, so look sources up through ``ganops.data.sources.SOURCES``, which holds every
one (this module's registry is the same object, but filled only once the sources are imported).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganops import catalog
from ganops.plugins import Registry


@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8, (N, C, H, W)
    labels: np.ndarray | None  # int64, (N,), or None for unlabelled data
    # int64, (N,): which file of the split each row was cut from (random_patches), else None
    sources: np.ndarray | None = None
    # uint8, (N, C, H, W): the model's input paired with each image (data.pairs), else None
    inputs: np.ndarray | None = None


@dataclass(frozen=True)
class RawDataset:
    name: str
    origin: str  # where the files were read from, for the manifest
    train: Split
    test: Split
    class_names: tuple[str, ...] = ()
    skipped: tuple[str, ...] = ()  # unreadable files left out (data.on_corrupt: skip)
    downscaled: int = 0  # files shrunk to options.native_max_side before patches were cut
    # random_patches with whole_test_side: each held-out file whole, uint8 (C, H, W) at its own size
    whole_test: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True)
class LoadOptions:
    """What a source that decodes files needs from ``data``; array sources ignore it."""

    image_size: int = 32
    on_corrupt: str = "skip"
    test_fraction: float = 0.1
    background: tuple[int, int, int] = (255, 255, 255)  # RGB under transparent pixels
    crop: str = "resize"  # or random_patches: patches_per_image squares cut at native resolution
    patches_per_image: int = 16
    whole_test_side: int | None = None  # random_patches: also keep the test files whole, longer side capped
    native_max_side: int = 1024  # random_patches: photos' shorter side capped at this before patches are cut
    pairs: str | None = None  # folders | side_by_side: paired images (data/pairs.py); None: unpaired
    direction: str = "AtoB"  # which of a pair is the model's input


SourceFn = Callable[[Path | None, LoadOptions], RawDataset]
SOURCES: Registry[SourceFn] = Registry(catalog.SOURCES)


def held_out(n: int, fraction: float, seed: int = 0) -> np.ndarray:
    """A fixed test mask for sources without a test split: ``fraction`` of n, chosen by a seeded shuffle."""
    mask = np.zeros(n, dtype=bool)
    if n > 1:
        count = min(n - 1, max(1, round(n * fraction)))
        mask[np.random.default_rng(seed).permutation(n)[:count]] = True
    return mask
