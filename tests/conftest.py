"""Shared fixtures: a tiny fabricated IDX dataset and tiny params, so real stages run in seconds."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import yaml

os.environ.setdefault("DVC_NO_ANALYTICS", "1")

REPO = Path(__file__).resolve().parents[1]


def stages_dvc_ran(output: str) -> list[str]:
    """The stages a `dvc repro` or `dvc exp run` ran, in order, read from its output: DVC names a
    stage 'NAME', or 'FILE:NAME' when another DVC file than dvc.yaml declares it (validate)."""
    return re.findall(r"Running stage '(?:[^':]+:)?(\w+)'", output)


def copy_from_repo(root: Path, *names: str) -> None:
    """The repository's files ``names`` (paths relative to it), copied to the same places under ``root``."""
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, root / name)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) in the IDX format, gzip-compressed like the real distribution."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def fabricate_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """28x28 images whose class is a bright bar at a class-specific place, plus noise: easy to learn."""
    labels = rng.integers(0, 10, size=n)
    images = rng.integers(0, 60, size=(n, 28, 28))
    for i, label in enumerate(labels):
        row, col = divmod(int(label), 5)
        images[i, 2 + row * 12 : 12 + row * 12, 2 + col * 5 : 6 + col * 5] = rng.integers(180, 256)
    return images.astype(np.uint8), labels.astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_idx(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-idx")
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 512), ("t10k", 256)):
        images, labels = fabricate_images(n, rng)
        write_idx(folder / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return folder


@pytest.fixture(scope="session")
def tiny_colour_folder(tmp_path_factory) -> Path:
    """An imagefolder of 320 small colour PNGs: two classes of smooth colour fields, warm and cool."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("tiny-colour")
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:24, 0:24] / 23.0
    for label, hues in (("warm", (0, 1)), ("cool", (2, 1))):
        (folder / label).mkdir()
        for i in range(160):
            weights = rng.uniform(0.2, 1.0, size=3)
            image = np.stack([xs * weights[0], ys * weights[1], (1 - xs) * weights[2]], axis=-1)
            image[..., hues[0]] = np.maximum(image[..., hues[0]], 0.6)  # a class's dominant channel
            pixels = (image * 255 + rng.normal(0, 6, image.shape)).clip(0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / label / f"{i:03d}.png")
    return folder


def tiny_params(data_root: Path, **overrides) -> dict:
    """Params small enough that the whole DAG runs in well under a minute on 2 cores."""
    params = {
        "seed": 7,
        "data": {"source": "fashion-mnist", "root": str(data_root), "image_size": 16},
        "evaluator": {
            "epochs": 4,
            "batch_size": 32,
            "lr": 5e-3,
            "width": 8,
            "feature_dim": 16,
            "min_steps": 0,
        },
        "model": {"arch": "dcgan", "latent_dim": 8, "g_width": 8, "d_width": 8},
        "train": {"device": "cpu", "epochs": 2, "batch_size": 32, "checkpoint_every": 5, "grid_size": 16},
        "evaluate": {
            "num_samples": 256,
            "num_real": 256,
            "batch_size": 128,
            "kid_subsets": 5,
            "kid_subset_size": 64,
        },
        "export": {"parity_samples": 8},
        "register": {"experiment": "ganops-test", "model_name": "ganops-generator"},  # export reads the name
        "cpu": {"kernels": "avx2", "threads": 2},  # dvc.yaml lists the section: it must be in the file
        "task": "generate",  # dvc.yaml lists these too
        "restore": {"depth": 2, "patch_depth": 2, "eval_images": 64},  # 16x16 images
    }
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        if key:
            params.setdefault(section, {})[key] = value
        else:
            params[section] = value
    return params


def write_params(path: Path, params: dict) -> Path:
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def sketch_and_picture(rng: np.random.Generator, size: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """A (sketch, picture) pair: a colour field and a grey outline of its bright square."""
    y, x = np.mgrid[:size, :size] / (size - 1)
    weights = rng.uniform(0.2, 1.0, 3)
    picture = np.stack([x * weights[0], y * weights[1], (1 - x) * weights[2]], axis=-1)
    top, left = rng.integers(2, size // 2, 2)
    picture[top : top + 6, left : left + 6] = 0.95
    sketch = np.full((size, size, 3), 1.0)
    sketch[top : top + 6, left] = sketch[top : top + 6, left + 5] = 0.0
    sketch[top, left : left + 6] = sketch[top + 5, left : left + 6] = 0.0
    return (sketch * 255).astype(np.uint8), (picture * 255).astype(np.uint8)


def write_paired_folder(root: Path, count: int) -> Path:
    """``root/A`` (sketches) and ``root/B`` (pictures), files of the same names (every other B a JPEG)."""
    from PIL import Image

    for side in ("A", "B"):
        (root / side).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(count):
        sketch, picture = sketch_and_picture(rng)
        Image.fromarray(sketch).save(root / "A" / f"{i:03d}.png")
        Image.fromarray(picture).save(root / "B" / (f"{i:03d}.jpg" if i % 2 else f"{i:03d}.png"))
    return root


def write_side_by_side(folders: Path, root: Path) -> Path:
    """The pairs of ``folders`` as pix2pix's AB files: A on the left half, B on the right."""
    from PIL import Image

    root.mkdir(parents=True)
    for a in sorted((folders / "A").iterdir()):
        b = next((folders / "B").glob(f"{a.stem}.*"))
        halves = [np.asarray(Image.open(path).convert("RGB")) for path in (a, b)]
        Image.fromarray(np.concatenate(halves, axis=1)).save(root / f"{a.stem}.png")
    return root
