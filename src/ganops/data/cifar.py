"""CIFAR-10 in torchvision's on-disk format (``cifar-10-batches-py/``: pickled batches).

The batches are Python pickles; they are read with an unpickler that only admits the NumPy
array constructors the format uses, so a crafted file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ganops.data.locations import CIFAR_FOLDER as FOLDER
from ganops.data.locations import RAW_DIR
from ganops.data.source_base import SOURCES, LoadOptions, RawDataset, Split
from ganops.errors import DataError

TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),  # how protocol-2 pickles from Python 3 store bytes
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            batch = _ArraysOnly(f, encoding="bytes").load()
        data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (OSError, EOFError, KeyError, ValueError, TypeError, pickle.UnpicklingError) as err:
        raise DataError(f"{path}: not a readable CIFAR-10 batch ({err}); re-download the dataset") from None
    if len(data) != len(labels):
        raise DataError(f"{path}: {len(data)} images but {len(labels)} labels; re-download the dataset")
    return data, labels


def _find(root: Path) -> Path | None:
    for folder in (root / FOLDER, root):
        if all((folder / name).is_file() for name in TRAIN_FILES + TEST_FILES):
            return folder
    return None


def _download(raw_dir: Path) -> Path:
    import torchvision.datasets

    try:
        for train in (True, False):
            torchvision.datasets.CIFAR10(root=str(raw_dir), train=train, download=True)
    except Exception as err:  # offline: URLError, RuntimeError, ...
        raise DataError(
            f"cifar10: not found in {raw_dir} and the download failed ({err}). Copy torchvision's "
            f"{FOLDER}/ folder ({', '.join(TRAIN_FILES + TEST_FILES)}) somewhere and set data.root to it"
        ) from None
    return raw_dir / FOLDER


@SOURCES.register("cifar10")
def load_cifar10(root: Path | None, options: LoadOptions | None = None) -> RawDataset:
    if root is not None:
        folder = _find(root)
        if folder is None:
            raise DataError(
                f"cifar10: data.root={root} does not hold {FOLDER}/ with {', '.join(TRAIN_FILES + TEST_FILES)}; "
                "fix data.root or set it to null to download into data/raw"
            )
    else:
        folder = _find(RAW_DIR) or _download(RAW_DIR)
    splits = {}
    for split, names in (("train", TRAIN_FILES), ("test", TEST_FILES)):
        parts = [_read_batch(folder / name) for name in names]
        splits[split] = Split(np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return RawDataset("cifar10", str(folder), splits["train"], splits["test"], CLASSES)
