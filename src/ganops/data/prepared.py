"""The prepared dataset: uint8 arrays (N, C, H, W) per split plus a manifest.

Stored as uint8 (4x smaller than float32) and mapped to [-1, 1] on the fly with
``to_unit_range``; ``manifest.json`` records the mapping, so every consumer agrees on it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ganops.errors import DataError
from ganops.files import atomic_path, read_json, sha256_file, write_json

SPLITS = ("train", "test")
EVAL_INPUTS, EVAL_TARGETS = "inputs.npz", "targets.npz"  # data/evalset: one image per entry (save_image_list)
WHOLE_TEST = "test_whole.npz"  # data.crop=random_patches: the held-out files, whole (data.whole_test_side)
VALUE_MAPPING = {"stored": "uint8 [0, 255]", "model": "float32 x / 127.5 - 1", "range": [-1.0, 1.0]}


def fit_to_size(images: np.ndarray, size: int) -> np.ndarray:
    """Bring (N, C, H, W) uint8 images to (N, C, size, size).

    Images slightly smaller than ``size`` (up to 25%, e.g. 28 -> 32) are zero-padded around
    the centre, which keeps every original pixel; anything else is resized with antialiasing.
    """
    n, c, h, w = images.shape
    if (h, w) == (size, size):
        return images
    if h == w and h <= size <= int(h * 1.25):
        top = (size - h) // 2
        out = np.zeros((n, c, size, size), dtype=np.uint8)
        out[:, :, top : top + h, top : top + w] = images
        return out
    import torch
    import torch.nn.functional as F

    resized = []
    for start in range(0, n, 4096):  # chunks keep the float copy small
        chunk = torch.from_numpy(images[start : start + 4096]).float()
        chunk = F.interpolate(chunk, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        resized.append(chunk.round().clamp(0, 255).to(torch.uint8).numpy())
    return np.concatenate(resized)


@dataclass(frozen=True)
class PreparedSplit:
    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray | None
    # Paired data (task translate): row i of ``inputs`` is the model's input for row i of ``images``.
    inputs: np.ndarray | None = None

    @property
    def pairs(self) -> np.ndarray:
        """What the training loop and the task are handed: the images, with their inputs (when paired)
        stacked after them along the channels, so that one shuffle, flip or crop keeps each pair together."""
        return self.images if self.inputs is None else np.concatenate([self.images, self.inputs], axis=1)


def split_pairs(pairs):
    """The inverse of ``PreparedSplit.pairs`` (arrays or tensors): (images, inputs or None). Images have
    1 or 3 channels, so an even count is a pair stacked: the images first."""
    channels = pairs.shape[1]
    if channels % 2:
        return pairs, None
    return pairs[:, : channels // 2], pairs[:, channels // 2 :]


def _paths(folder: Path, split: str) -> tuple[Path, Path]:
    return folder / f"{split}.npy", folder / f"{split}_labels.npy"


def _save_array(path: Path, array: np.ndarray) -> str:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)
    return sha256_file(path)


def save_image_list(path: Path, images: list[np.ndarray]) -> str:
    """Images of different sizes in one file: an uncompressed .npz (``np.load`` reads it) whose entries
    "0000", "0001", ... are the images in order. Written with fixed zip timestamps (np.savez stamps
    the clock), so the same images give the same bytes and DVC's hash. Returns the file's sha256."""
    import zipfile

    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for i, image in enumerate(images):
            entry = zipfile.ZipInfo(f"{i:04d}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(entry, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.ascontiguousarray(image), allow_pickle=False)
    return sha256_file(path)


def load_image_list(path: Path) -> list[np.ndarray]:
    """The images ``save_image_list`` wrote, in order."""
    with np.load(path, allow_pickle=False) as archive:
        return [archive[name] for name in sorted(archive.files)]


def write_prepared(
    folder: Path, splits: dict[str, PreparedSplit], info: dict, whole_test: list[np.ndarray] | None = None
) -> dict:
    """Write every split (and the held-out photos kept whole, if any), then the manifest last: a
    manifest means the arrays are complete."""
    manifest = dict(info)
    manifest["value_mapping"] = VALUE_MAPPING
    manifest["splits"] = {}
    for split, data in splits.items():
        images_path, labels_path = _paths(folder, split)
        entry = {
            "count": int(len(data.images)),
            "shape": list(data.images.shape[1:]),
            "images": images_path.name,
            "images_sha256": _save_array(images_path, data.images),
        }
        if data.inputs is not None:
            inputs_path = folder / f"{split}_inputs.npy"
            entry["inputs"] = inputs_path.name
            entry["inputs_sha256"] = _save_array(inputs_path, data.inputs)
        if data.labels is not None:
            entry["labels"] = labels_path.name
            entry["labels_sha256"] = _save_array(labels_path, data.labels)
            entry["num_classes"] = int(data.labels.max()) + 1
        manifest["splits"][split] = entry
    whole_path = folder / WHOLE_TEST
    whole_path.unlink(missing_ok=True)  # a rerun without them must not leave an earlier run's behind
    if whole_test:
        manifest["whole_test"] = {
            "file": whole_path.name,
            "count": len(whole_test),
            "shapes": [list(image.shape) for image in whole_test],
            "sha256": save_image_list(whole_path, whole_test),
        }
    write_json(folder / "manifest.json", manifest)
    return manifest


def load_whole_test(folder: str | Path) -> list[np.ndarray] | None:
    """The held-out photos kept whole (uint8 CHW, each at its own size), or None when prepare kept none."""
    entry = read_manifest(folder).get("whole_test")
    return None if entry is None else load_image_list(Path(folder) / entry["file"])


def read_manifest(folder: str | Path) -> dict:
    path = Path(folder) / "manifest.json"
    if not path.exists():
        raise DataError(
            f"{path}: not found; run the prepare stage first (`ganops prepare` or `dvc repro prepare`)"
        )
    return read_json(path)


def load_split(folder: str | Path, split: str, verify: bool = False) -> PreparedSplit:
    folder = Path(folder)
    entry = read_manifest(folder)["splits"].get(split)
    if entry is None:
        raise DataError(f"{folder}: no '{split}' split in manifest.json; rerun the prepare stage")
    images_path = folder / entry["images"]
    if verify and sha256_file(images_path) != entry["images_sha256"]:
        raise DataError(f"{images_path}: sha256 does not match manifest.json; rerun the prepare stage")
    images = np.load(images_path)
    labels = np.load(folder / entry["labels"]) if "labels" in entry else None
    inputs = np.load(folder / entry["inputs"]) if "inputs" in entry else None
    return PreparedSplit(images, labels, inputs)


def to_unit_range(images_uint8):
    """uint8 tensor -> float32 in [-1, 1] (the mapping recorded in the manifest)."""
    return images_uint8.float().div_(127.5).sub_(1.0)


def dataset_fingerprint(folder: str | Path) -> str:
    """sha256 of the prepared train images (and of their paired inputs), from the manifest: names the
    data a model saw."""
    train = read_manifest(folder)["splits"]["train"]
    if "inputs_sha256" not in train:
        return train["images_sha256"]
    return hashlib.sha256(f"{train['images_sha256']}:{train['inputs_sha256']}".encode()).hexdigest()
