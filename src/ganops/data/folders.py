"""Sources that read folders of image files: ``imagefolder`` (any tree) and ``celeba`` (aligned).

imagefolder: images directly under data.root are unlabelled; images in sub-folders take the
sub-folder's name as their class (sorted names -> 0, 1, ...). A share ``data.test_fraction``
is held out as the test split by a fixed shuffle. celeba: torchvision's layout
(``img_align_celeba/*.jpg``, optionally ``list_eval_partition.txt``, whose 0/1 rows are train and
2 rows test); without the partition file the test split is held out like imagefolder's. With
``data.crop: random_patches`` either source splits by file first, then cuts
``data.patches_per_image`` patches from each file (data/patches.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ganops.data.images import EXTENSIONS, DecodeReport, decode_all, image_files
from ganops.data.locations import RAW_DIR
from ganops.data.pairs import load_pairs
from ganops.data.patches import decode_patches, index_in_split
from ganops.data.source_base import SOURCES, LoadOptions, RawDataset, Split, held_out
from ganops.errors import DataError


def _to_dataset(
    name: str,
    origin: Path,
    paths: list[Path],
    labels: np.ndarray | None,
    test: np.ndarray,
    options: LoadOptions,
    class_names: tuple[str, ...] = (),
) -> RawDataset:
    report = DecodeReport()
    patches = options.crop == "random_patches"
    if patches:
        per_image = options.patches_per_image
        images, kept, whole_test = decode_patches(
            paths,
            test,
            options.image_size,
            per_image,
            options.on_corrupt,
            report,
            options.background,
            options.whole_test_side,
            options.native_max_side,
        )
    else:
        per_image, whole_test = 1, []
        images, kept = decode_all(paths, options.image_size, options.on_corrupt, report, options.background)
    if len(kept) == 0:
        raise DataError(f"{name}: none of the {len(paths)} image files under {origin} could be read")
    if report.all_gray:  # every file was grayscale: keep one channel
        images = images[:, :1]
        whole_test = [image[:1] for image in whole_test]
    # The file behind each row (a file's patches are consecutive rows): its split, label and index.
    row_file = np.repeat(np.asarray(kept, dtype=np.int64), per_image)
    sources = index_in_split(test)[row_file] if patches else None
    test, labels = test[row_file], (None if labels is None else labels[row_file])
    splits = {
        split: Split(
            images[rows],
            labels=None if labels is None else labels[rows],
            sources=None if sources is None else sources[rows],
        )
        for split, rows in (("train", ~test), ("test", test))
    }
    return RawDataset(
        name,
        str(origin),
        splits["train"],
        splits["test"],
        class_names=class_names,
        skipped=tuple(report.skipped),
        downscaled=report.downscaled,
        whole_test=tuple(whole_test),
    )


@SOURCES.register("imagefolder")
def load_imagefolder(root: Path | None, options: LoadOptions | None = None) -> RawDataset:
    options = options or LoadOptions()
    if root is None or not root.is_dir():
        raise DataError(f"imagefolder: data.root={root} is not a folder; set data.root to a folder of images")
    if options.pairs is not None:
        return load_pairs(root, options)
    top = image_files(root)
    folders = (d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    classes = sorted(d.name for d in folders if image_files(d, recursive=True))
    if top and classes:
        raise DataError(
            f"imagefolder: {root} has images both at the top and in sub-folders ({', '.join(classes[:3])}); "
            "put every image in a class sub-folder, or all of them at the top for unlabelled data"
        )
    if classes:
        per_class = [image_files(root / c, recursive=True) for c in classes]
        paths = [p for group in per_class for p in group]
        labels = np.concatenate([np.full(len(g), i, dtype=np.int64) for i, g in enumerate(per_class)])
    else:
        paths, labels = top, None
    if not paths:
        raise DataError(f"imagefolder: no image files ({', '.join(sorted(EXTENSIONS))}) under {root}")
    test = held_out(len(paths), options.test_fraction)
    return _to_dataset("imagefolder", root, paths, labels, test, options, tuple(classes))


@SOURCES.register("celeba")
def load_celeba(root: Path | None, options: LoadOptions | None = None) -> RawDataset:
    options = options or LoadOptions()
    base = root if root is not None else RAW_DIR / "celeba"
    folder = next(
        (f for f in (base / "img_align_celeba", base / "celeba" / "img_align_celeba") if f.is_dir()), None
    )
    if folder is None:
        raise DataError(
            f"celeba: no img_align_celeba/ folder under {base}. Nothing is downloaded automatically: get "
            "img_align_celeba.zip (and optionally list_eval_partition.txt) from the CelebA site, unpack it "
            f"so that {base / 'img_align_celeba' / '000001.jpg'} exists, or set data.root to the folder "
            "that holds img_align_celeba/"
        )
    paths = image_files(folder)
    if not paths:
        raise DataError(f"celeba: {folder} holds no image files")
    partition = folder.parent / "list_eval_partition.txt"
    if partition.is_file():
        split_of = {}
        for line in partition.read_text().split("\n"):
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit():
                split_of[parts[0]] = int(parts[1])
        test = np.array([split_of.get(p.name, 0) == 2 for p in paths])
    else:
        test = held_out(len(paths), options.test_fraction)
    return _to_dataset("celeba", folder, paths, None, test, options)
