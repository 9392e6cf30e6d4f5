"""scikit-learn's bundled 8x8 handwritten digits (1,797 images): offline, tiny, for quick tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganops.data.source_base import SOURCES, LoadOptions, RawDataset, Split, held_out
from ganops.errors import DataError


@SOURCES.register("digits")
def load_digits(root: Path | None, options: LoadOptions | None = None) -> RawDataset:
    options = options or LoadOptions()
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise DataError("digits: needs scikit-learn (`pip install scikit-learn`)") from None
    bunch = sklearn_digits()
    images = np.round(bunch.images * (255 / 16)).clip(0, 255).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    labels = bunch.target.astype(np.int64)
    test = held_out(len(images), options.test_fraction)
    return RawDataset(
        "digits",
        "sklearn.datasets.load_digits",
        Split(images[~test], labels[~test]),
        Split(images[test], labels[test]),
        tuple(str(d) for d in range(10)),
    )
