"""The library versions that shape numbers, recorded so that an upgrade reruns what it affects.

A new torch can change convolution kernels, a new numpy or scipy the FID's matrix square root,
a new onnxruntime the exported graph's arithmetic. The ``validate`` stage writes these versions
to a file every stage depends on, and the training fingerprint includes them, so neither DVC nor
a resume reuses results computed with other libraries.

Versions come from the names of the ``.dist-info`` folders on ``sys.path``
(``torch-2.14.1.dist-info``: installers write the name and version there, PEP 427), the first
folder of a name winning as in imports: a directory listing, where ``importlib.metadata`` imports
the email parser and parses every METADATA file (50 ms of each no-op ``dvc repro``). A library
installed without such a folder is looked up through ``importlib.metadata``.
"""

from __future__ import annotations

import os
import platform
import re
import sys

# distribution names, first one installed wins (onnxruntime ships as onnxruntime-gpu on GPU builds)
NUMERIC_LIBRARIES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",),
    "torchvision": ("torchvision",),
    "numpy": ("numpy",),
    "pillow": ("pillow",),
    "scipy": ("scipy",),
    "torchmetrics": ("torchmetrics",),
    "onnx": ("onnx",),
    "onnxscript": ("onnxscript",),
    "onnxruntime": ("onnxruntime-gpu", "onnxruntime"),
}


def _normalized(name: str) -> str:
    """A distribution name as PEP 503 compares them (PyYAML, pyyaml and py_yaml are one)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _dist_info_versions() -> dict[str, str]:
    # Listed afresh on each call (under 1 ms): a long-lived process (a Prefect worker) must see an upgrade.
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = sorted(os.listdir(entry or "."))
        except OSError:  # a zip file or a folder that is gone
            continue
        for folder in names:
            if folder.endswith(".dist-info"):
                name, _, version = folder.removesuffix(".dist-info").partition("-")
                found.setdefault(_normalized(name), version)
    return found


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None when it is not installed."""
    return _lookup(distribution, _dist_info_versions())


def _lookup(distribution: str, listed: dict[str, str]) -> str | None:
    version = listed.get(_normalized(distribution))
    if version:
        return version
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str]:
    listed = _dist_info_versions()
    versions = {"python": platform.python_version()}
    for name, distributions in NUMERIC_LIBRARIES.items():
        found = (_lookup(d, listed) for d in distributions)
        versions[name] = next(filter(None, found), "absent")
    return versions
