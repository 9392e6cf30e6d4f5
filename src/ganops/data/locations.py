"""Where the built-in sources find their raw files when ``data.root`` is null, and whether a folder
holds pairs (``data.pairs: auto``).

This module imports nothing heavy: the ``validate`` stage, which runs on every ``dvc repro``,
reads it to find the files to fingerprint without loading numpy or the readers (data/sources.py).
"""

from __future__ import annotations

from pathlib import Path

RAW_DIR = Path("data/raw")  # torchvision's downloads and copies placed by hand
CIFAR_FOLDER = "cifar-10-batches-py"  # the folder torchvision's CIFAR10 unpacks
IDX_DEBIAN_DIRS = {  # Debian's dataset-fashion-mnist and dataset-mnist
    "fashion-mnist": Path("/usr/share/datasets/fashion-mnist"),
    "mnist": Path("/usr/share/datasets/mnist"),
}
TORCHVISION_CLASSES = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST"}


def torchvision_raw_dir(source: str) -> Path:
    """Where torchvision's dataset class downloads the IDX files of ``source``."""
    return RAW_DIR / TORCHVISION_CLASSES[source] / "raw"


# Each source's folders in its own order of preference.
DEFAULT_LOCATIONS: dict[str, tuple[Path, ...]] = {
    **{name: (debian, torchvision_raw_dir(name)) for name, debian in IDX_DEBIAN_DIRS.items()},
    "cifar10": (RAW_DIR / CIFAR_FOLDER,),
    "celeba": (RAW_DIR / "celeba",),
}
BUNDLED = {"digits": "scikit-learn"}  # sources whose data ships inside a package


def resolve_pairs(pairs: str | None, task: str, source: str, root: str | None) -> str | None:
    """What ``data.pairs`` means for these params (data/pairs.py reads the pairs): ``auto`` is
    ``folders`` when the task learns from pairs and data.root holds A/ and B/, else unpaired (None)."""
    if pairs != "auto":
        return pairs
    from ganops import catalog

    has_halves = root is not None and all((Path(root) / side).is_dir() for side in ("A", "B"))
    return "folders" if task in catalog.PAIRED_TASKS and source == "imagefolder" and has_halves else None
