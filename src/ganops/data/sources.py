"""Raw data sources, looked up by name (``data.source`` in params.yaml).

A source is a function ``(root, options) -> RawDataset`` returning uint8 images shaped
(N, C, H, W), with integer labels when the dataset has them. Array datasets (the IDX ones,
CIFAR-10, digits) come at their native size; sources that decode image files (celeba,
imagefolder) resize each file as they read it (shorter side to ``image_size``, centre crop),
since the files differ in size, or with ``data.crop: random_patches`` cut patches from it at
native resolution (data/patches.py). Everything after that (channels, resizing, duplicates,
normalization, hashing) is shared in the prepare stage. Adding a source means writing one more
function with ``@SOURCES.register("name")`` (data/source_base.py: the types and the registry
every source shares); the IDX sources live here, each other one in its own module, which this
module imports so that ``SOURCES`` here holds them all.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganops.data import cifar, digits, folders  # noqa: F401 - they register their sources on import
from ganops.data.idx import read_idx
from ganops.data.locations import (
    DEFAULT_LOCATIONS,
    IDX_DEBIAN_DIRS,
    RAW_DIR,
    TORCHVISION_CLASSES,
    torchvision_raw_dir,
)
from ganops.data.source_base import SOURCES, LoadOptions, RawDataset, SourceFn, Split, held_out
from ganops.errors import DataError

# The shared names stay importable from here, where callers (stages/prepare.py, tests) take them.
__all__ = [
    "SOURCES",
    "FASHION_MNIST",
    "MNIST",
    "IdxLayout",
    "LoadOptions",
    "RawDataset",
    "SourceFn",
    "Split",
    "held_out",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IdxLayout:
    """An MNIST-style dataset: four IDX files, shipped by Debian and by torchvision's mirrors."""

    name: str
    class_names: tuple[str, ...]
    files = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }

    def find(self, folder: Path) -> dict[str, tuple[Path, Path]] | None:
        """Paths of the four files in ``folder`` (raw or .gz), or None if any is missing."""
        found = {}
        for split, stems in self.files.items():
            paths = []
            for stem in stems:
                candidates = [folder / stem, folder / f"{stem}.gz"]
                hit = next((p for p in candidates if p.is_file()), None)
                if hit is None:
                    return None
                paths.append(hit)
            found[split] = (paths[0], paths[1])
        return found

    def download(self, raw_dir: Path) -> Path:
        """Fetch through torchvision into ``raw_dir``; returns the folder holding the IDX files."""
        import torchvision.datasets

        dataset_cls = getattr(torchvision.datasets, TORCHVISION_CLASSES[self.name])
        try:
            for train in (True, False):
                dataset_cls(root=str(raw_dir), train=train, download=True)
        except Exception as err:  # torchvision raises URLError, RuntimeError, ... when offline
            raise DataError(
                f"{self.name}: not found in {IDX_DEBIAN_DIRS[self.name]} or {raw_dir}, and the download failed ({err}). "
                f"Install it with `apt-get install dataset-{self.name}` (Debian), or copy the four IDX files "
                f"({', '.join(s for pair in self.files.values() for s in pair)}) into a folder and set data.root"
            ) from None
        return torchvision_raw_dir(self.name)

    def load(self, root: Path | None, options: LoadOptions | None = None) -> RawDataset:
        if root is not None:
            found = self.find(root)
            if found is None:
                raise DataError(
                    f"{self.name}: data.root={root} does not hold the four IDX files "
                    f"({', '.join(s for pair in self.files.values() for s in pair)}, optionally .gz); "
                    "fix data.root or set it to null to use the default locations"
                )
        else:
            found = next(filter(None, map(self.find, DEFAULT_LOCATIONS[self.name])), None)
            if found is None:
                found = self.find(self.download(RAW_DIR))
        splits = {split: self._read(*paths) for split, paths in found.items()}
        origin = str(found["train"][0].parent)
        return RawDataset(self.name, origin, splits["train"], splits["test"], self.class_names)

    @staticmethod
    def _read(images_path: Path, labels_path: Path) -> Split:
        images = read_idx(images_path)
        labels = read_idx(labels_path).astype(np.int64)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DataError(
                f"{images_path}: expected (N, H, W) images and N labels, got {images.shape} and "
                f"{labels.shape}; the files do not belong together"
            )
        return Split(images[:, None, :, :].astype(np.uint8), labels)


FASHION_MNIST = IdxLayout(
    "fashion-mnist",
    ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"),
)
MNIST = IdxLayout("mnist", tuple(str(d) for d in range(10)))

SOURCES.register("fashion-mnist")(FASHION_MNIST.load)
SOURCES.register("mnist")(MNIST.load)
