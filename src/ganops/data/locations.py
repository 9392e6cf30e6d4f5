"""Where the built-in sources find their raw files when ``data.root`` is null.

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
