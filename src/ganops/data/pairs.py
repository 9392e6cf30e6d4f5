"""Paired images for task translate, from a folder (``data.source: imagefolder`` with ``data.pairs``):

- folders: ``data.root/A/`` and ``data.root/B/`` hold files of the same names (the stem: ``a.png``
  pairs with ``a.jpg``), as pix2pix's combine_A_and_B.py expects them;
- side_by_side: each file under ``data.root`` is one pair, A on the left half and B on the right
  (pix2pix's facades, maps, edges2shoes downloads).

``data.direction`` picks the model's input: AtoB reads A as the input and B as the image to make.
A pair is kept only when both of its images decode; the test split is held out by pair.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganops.data.images import NATIVE_MAX_SIDE, DecodeReport, decode, image_files, resize_center_crop
from ganops.data.source_base import LoadOptions, RawDataset, Split, held_out
from ganops.errors import DataError

SHOWN = 10  # names listed in an error at most


def _named(folder: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in image_files(folder, recursive=True):
        name = path.relative_to(folder).with_suffix("").as_posix()
        if name in files:
            raise DataError(
                f"data.pairs folders: {files[name].name} and {path.name} in {folder} have the same name; "
                "keep one image per name"
            )
        files[name] = path
    return files


def _listed(names: list[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more


def paired_files(root: Path, pairs: str) -> list[tuple[Path, ...]]:
    """The pairs' files under ``root``, sorted by name: (A, B) for folders, (AB,) for side_by_side.
    DataError naming every unpaired or missing name (the first few) and what to do."""
    if not root.is_dir():
        raise DataError(
            f"data.pairs {pairs}: data.root={root} is not a folder; set data.root to the pairs' folder"
        )
    if pairs == "side_by_side":
        files = image_files(root)
        if not files:
            raise DataError(f"data.pairs side_by_side: no image files under {root}; put the AB images there")
        return [(path,) for path in files]
    missing = [side for side in ("A", "B") if not (root / side).is_dir()]
    if missing:
        raise DataError(
            f"data.pairs folders: {root} has no {' or '.join(f'{m}/' for m in missing)} folder; put the "
            f"inputs in {root / 'A'} and the images they become in {root / 'B'}, files of the same names"
        )
    a, b = _named(root / "A"), _named(root / "B")
    only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
    if only_a or only_b:
        problems = []
        if only_a:
            problems.append(f"{len(only_a)} in A/ without a B/ image of the same name: {_listed(only_a)}")
        if only_b:
            problems.append(f"{len(only_b)} in B/ without an A/ image of the same name: {_listed(only_b)}")
        raise DataError(
            f"data.pairs folders: unpaired images under {root}: {'; '.join(problems)}. Add the missing "
            "halves or remove these files"
        )
    if not a:
        raise DataError(f"data.pairs folders: {root / 'A'} and {root / 'B'} hold no image files")
    return [(a[name], b[name]) for name in sorted(a)]


def _halves(path: Path, options: LoadOptions, report: DecodeReport) -> tuple[np.ndarray, np.ndarray] | None:
    """An AB file's left and right halves, each resized and centre-cropped to image_size."""
    from PIL import Image

    whole = decode(
        path, options.image_size, options.on_corrupt, report, options.background, native=NATIVE_MAX_SIDE
    )
    if whole is None:
        return None
    half = whole.shape[2] // 2
    return tuple(
        np.asarray(
            resize_center_crop(Image.fromarray(side.transpose(1, 2, 0)), options.image_size), dtype=np.uint8
        ).transpose(2, 0, 1)
        for side in (whole[:, :, :half], whole[:, :, half : 2 * half])
    )


def load_pairs(root: Path, options: LoadOptions) -> RawDataset:
    """The pairs under ``root`` as a dataset: ``images`` the images to make, ``inputs`` the model's."""
    from ganops.progress import Progress

    files = paired_files(root, options.pairs)
    report = DecodeReport()
    a_images, b_images = [], []
    with Progress(len(files), "decode pairs", unit="pair") as progress:
        for pair in files:
            if len(pair) == 1:
                decoded = _halves(pair[0], options, report)
            else:
                decoded = tuple(
                    decode(path, options.image_size, options.on_corrupt, report, options.background)
                    for path in pair
                )
            if decoded is not None and all(half is not None for half in decoded):
                a_images.append(decoded[0])
                b_images.append(decoded[1])
            progress.update()
    if not a_images:
        raise DataError(
            f"data.pairs {options.pairs}: none of the {len(files)} pairs under {root} could be read"
        )
    a, b = np.stack(a_images), np.stack(b_images)
    if report.all_gray:  # every file was grayscale: keep one channel
        a, b = a[:, :1], b[:, :1]
    inputs, images = (a, b) if options.direction == "AtoB" else (b, a)
    test = held_out(len(images), options.test_fraction)
    return RawDataset(
        f"imagefolder ({options.pairs} pairs, {options.direction})",
        str(root),
        Split(images[~test], labels=None, inputs=inputs[~test]),
        Split(images[test], labels=None, inputs=inputs[test]),
        skipped=tuple(report.skipped),
    )
