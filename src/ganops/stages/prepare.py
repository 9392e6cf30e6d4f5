"""prepare: raw dataset -> data/prepared/{train,test}.npy (+ labels) and manifest.json."""

from __future__ import annotations

import logging
from pathlib import Path

from ganops.config import Params
from ganops.data.prepared import PreparedSplit, fit_to_size, write_prepared
from ganops.data.sources import SOURCES
from ganops.stages import Layout

log = logging.getLogger(__name__)


def run(params: Params, layout: Layout, **_) -> dict:
    p = params.data
    raw = SOURCES.get(p.source)(Path(p.root) if p.root else None)
    splits = {}
    for split, cap in (("train", p.max_train), ("test", p.max_test)):
        data = getattr(raw, split)
        images, labels = data.images[:cap], (data.labels[:cap] if data.labels is not None else None)
        splits[split] = PreparedSplit(fit_to_size(images, p.image_size), labels)
    info = {
        "source": raw.name,
        "origin": raw.origin,
        "native_shape": list(raw.train.images.shape[1:]),
        "image_size": p.image_size,
        "class_names": list(raw.class_names),
    }
    manifest = write_prepared(layout.prepared, splits, info)
    counts = {split: entry["count"] for split, entry in manifest["splits"].items()}
    log.info(
        "prepared %s from %s: %s images of %s",
        raw.name,
        raw.origin,
        counts,
        manifest["splits"]["train"]["shape"],
    )
    return manifest
