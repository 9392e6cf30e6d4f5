"""Cache of real-data features, keyed by content hashes.

The key is the sha256 of: the prepared images and labels of the split, the preprocessing
recorded in the manifest, the feature network's weights file, the split and the count, the code
that builds the network and extracts the features, and the library versions. A changed dataset,
resize, evaluator, sample count, extraction code or torch therefore gets new statistics; stale
ones cannot be reused (the usual cause of "FID does not match" reports).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import torch

from ganops import codedeps
from ganops.data.prepared import read_manifest
from ganops.environment import library_versions
from ganops.files import save_torch
from ganops.metrics.features import Features

log = logging.getLogger(__name__)

PREPROCESSING_KEYS = ("source", "image_size", "channels", "deduplicate", "value_mapping", "native_shape")
# The feature net is rebuilt by metrics.evaluator and run by metrics.features (with what they import).
EXTRACTION_MODULES = ("ganops.metrics.evaluator", "ganops.metrics.features")


def extraction_code_sha256() -> str:
    files = {path for module in EXTRACTION_MODULES for path in codedeps.closure(module)}
    return codedeps.code_hash(files)


def cache_key(prepared: Path, split: str, count: int, feature_net_sha256: str) -> str:
    manifest = read_manifest(prepared)
    entry = manifest["splits"][split]
    parts = {
        "images_sha256": entry["images_sha256"],
        "labels_sha256": entry.get("labels_sha256"),
        "preprocessing": {k: manifest.get(k) for k in PREPROCESSING_KEYS},
        "feature_net_sha256": feature_net_sha256,
        "split": split,
        "count": count,
        "extraction_code_sha256": extraction_code_sha256(),
        "libraries": library_versions(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def cached_features(folder: Path, key: str, compute: Callable[[], Features]) -> Features:
    """Features stored under ``key`` in ``folder``, computed (and stored) on a miss."""
    path = folder / f"{key}.pt"
    if path.is_file():
        try:
            return Features.from_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        except Exception as err:  # a damaged cache file is recomputed, never trusted
            log.warning("feature cache %s is unreadable (%s); recomputing", path, err)
    features = compute()
    save_torch(features.state_dict(), path)
    ignore = folder / ".gitignore"  # a cache, never committed (the way DVC marks its own folders)
    if not ignore.exists():
        ignore.write_text("*\n")
    return features


def cache_folder(root: Path) -> Path:
    """Where a project keeps cached real features (ignored by git, like everything under models/)."""
    return Path(root) / "models" / "feature_cache"
