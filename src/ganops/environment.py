"""The library versions that shape numbers, recorded so that an upgrade reruns what it affects.

A new torch can change convolution kernels, a new numpy or scipy the FID's matrix square root,
a new onnxruntime the exported graph's arithmetic. The ``validate`` stage writes these versions
to a file every stage depends on, and the training fingerprint includes them, so neither DVC nor
a resume reuses results computed with other libraries. Versions come from package metadata,
which is fast and imports nothing.
"""

from __future__ import annotations

import platform
from importlib import metadata

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


def _version(distributions: tuple[str, ...]) -> str:
    for name in distributions:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return "absent"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    versions.update({name: _version(dists) for name, dists in NUMERIC_LIBRARIES.items()})
    return versions
