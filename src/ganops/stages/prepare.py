"""prepare: raw dataset -> data/prepared/{train,test}.npy (+ labels) and manifest.json.

Preprocessing, in order: the source's own decoding (files: shorter side resized, centre crop;
or, with ``data.crop: random_patches``, patches cut at native resolution after the split by file),
the caps (first N of each split), channel conversion, fit to ``image_size`` (pad or resize),
exact-duplicate removal within each split. The manifest records what was done and counted; in
resize mode it has exactly the keys it had before random_patches existed, so the pinned default
run's data/prepared (dvc.lock) keeps its hash.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ganops.config import Params
from ganops.data.images import convert_channels
from ganops.data.locations import resolve_pairs
from ganops.data.prepared import PreparedSplit, fit_to_size, write_prepared
from ganops.data.sources import SOURCES, LoadOptions
from ganops.errors import DataError
from ganops.stages import Layout

log = logging.getLogger(__name__)


def first_occurrences(images: np.ndarray) -> np.ndarray:
    """Indices of the first copy of each distinct image (exact bytes), in order."""
    seen: dict[bytes, int] = {}
    for i, image in enumerate(images):
        seen.setdefault(image.tobytes(), i)
    return np.fromiter(sorted(seen.values()), dtype=np.int64)


def run(params: Params, layout: Layout, **_) -> dict:
    p = params.data
    options = LoadOptions(
        image_size=p.image_size,
        on_corrupt=p.on_corrupt,
        test_fraction=p.test_fraction,
        background=p.background_rgb,
        crop=p.crop,
        patches_per_image=p.patches_per_image,
        whole_test_side=p.whole_test_side,
        native_max_side=p.native_max_side,
        pairs=resolve_pairs(p.pairs, params.task, p.source, p.root),
        direction=p.direction,
    )
    raw = SOURCES.get(p.source)(Path(p.root) if p.root else None, options)
    splits, duplicates, source_images = {}, {}, {}
    for split, cap in (("train", p.max_train), ("test", p.max_test)):
        data = getattr(raw, split)
        images, labels = data.images[:cap], (data.labels[:cap] if data.labels is not None else None)
        sources = data.sources[:cap] if data.sources is not None else None
        inputs = data.inputs[:cap] if data.inputs is not None else None
        if len(images) == 0:
            raise DataError(f"{p.source}: the {split} split is empty; add images or lower data.test_fraction")
        images = fit_to_size(convert_channels(images, p.channels), p.image_size)
        if inputs is not None:
            inputs = fit_to_size(convert_channels(inputs, p.channels), p.image_size)
        duplicates[split] = 0
        if p.deduplicate:  # a pair is a duplicate when both of its images are
            keep = first_occurrences(images if inputs is None else np.concatenate([images, inputs], axis=1))
            duplicates[split] = len(images) - len(keep)
            images, labels = images[keep], (labels[keep] if labels is not None else None)
            sources = sources[keep] if sources is not None else None
            inputs = inputs[keep] if inputs is not None else None
        if sources is not None:
            source_images[split] = len(np.unique(sources))
        splits[split] = PreparedSplit(images, labels, inputs)
    info = {
        "source": raw.name,
        "origin": raw.origin,
        "native_shape": list(raw.train.images.shape[1:]),
        "image_size": p.image_size,
        "channels": int(splits["train"].images.shape[1]),
        "deduplicate": p.deduplicate,
        "duplicates_removed": duplicates,
        "corrupt_skipped": len(raw.skipped),
        "corrupt_files": list(raw.skipped[:20]),  # the first few, to find them
        "class_names": list(raw.class_names),
        "background": list(p.background_rgb),  # what transparent pixels became
    }
    if options.pairs is not None:  # absent for unpaired data, as the crop keys below
        info["pairs"] = options.pairs
        info["direction"] = p.direction
    if p.crop == "random_patches":  # absent in resize mode: see the module docstring
        info["crop"] = p.crop
        info["patches_per_image"] = p.patches_per_image
        info["source_images"] = source_images  # files that patches were cut from, per split
        info["native_max_side"] = p.native_max_side  # shorter sides above it were downscaled first
        info["downscaled_images"] = raw.downscaled
    whole_test = [convert_channels(image[None], p.channels)[0] for image in raw.whole_test]
    manifest = write_prepared(layout.prepared, splits, info, whole_test)
    counts = {split: entry["count"] for split, entry in manifest["splits"].items()}
    log.info(
        "prepared %s from %s: %s images of %s",
        raw.name,
        raw.origin,
        counts,
        manifest["splits"]["train"]["shape"],
    )
    if raw.skipped:
        log.warning(
            "skipped %d unreadable image files (data.on_corrupt: skip), e.g. %s",
            len(raw.skipped),
            raw.skipped[0],
        )
    return manifest
