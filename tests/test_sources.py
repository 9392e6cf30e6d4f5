"""Every data source on small fabricated files in its real on-disk format, corrupt files included."""

import pickle

import numpy as np
import pytest
from PIL import Image

from ganops.config import parse_params
from ganops.data.prepared import load_split
from ganops.data.sources import SOURCES
from ganops.errors import ConfigError, DataError
from ganops.stages import Layout
from ganops.stages.prepare import run as prepare
from ganops.training.loop import TrainPaths, train

from conftest import tiny_params

ALL_SOURCES = ["celeba", "cifar10", "digits", "fashion-mnist", "imagefolder", "mnist"]


def test_every_source_is_registered():
    assert SOURCES.names() == ALL_SOURCES


def prepared(tmp_path, **data):
    manifest = prepare(parse_params({"data": data}), Layout(tmp_path / "out"))
    folder = tmp_path / "out" / "data" / "prepared"
    return manifest, load_split(folder, "train"), load_split(folder, "test")


def write_cifar(folder, rng, per_batch=6):
    folder.mkdir(parents=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"batch_label": name.encode(),
            b"labels": rng.integers(0, 10, per_batch).tolist(),
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            b"filenames": [f"{i}.png".encode() for i in range(per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    return folder


def test_cifar10_reads_torchvision_batches(tmp_path):
    rng = np.random.default_rng(0)
    write_cifar(tmp_path / "raw" / "cifar-10-batches-py", rng)
    manifest, train_split, test_split = prepared(tmp_path, source="cifar10", root=str(tmp_path / "raw"))
    assert train_split.images.shape == (30, 3, 32, 32) and test_split.images.shape == (6, 3, 32, 32)
    assert manifest["class_names"][0] == "airplane" and train_split.labels.dtype == np.int64


def test_cifar10_corrupt_batch_names_the_file(tmp_path):
    folder = write_cifar(tmp_path / "cifar-10-batches-py", np.random.default_rng(0))
    (folder / "data_batch_3").write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match="data_batch_3: not a readable CIFAR-10 batch"):
        prepared(tmp_path, source="cifar10", root=str(tmp_path))


def test_cifar10_refuses_pickles_that_would_run_code(tmp_path):
    folder = write_cifar(tmp_path / "cifar-10-batches-py", np.random.default_rng(0))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": []}))
    with pytest.raises(DataError, match="test_batch: not a readable CIFAR-10 batch.*not allowed"):
        prepared(tmp_path, source="cifar10", root=str(tmp_path))


def test_cifar10_absent_offline_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError, match="does not hold cifar-10-batches-py"):
        prepared(tmp_path, source="cifar10", root=str(tmp_path))


def save_image(path, size, mode="RGB", value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value if mode == "L" else (value, 255 - value, 30)).save(path)


def test_imagefolder_with_class_subfolders_resizes_crops_and_skips_corrupt(tmp_path):
    root = tmp_path / "images"
    for i in range(6):
        save_image(root / "cats" / f"{i}.png", (40 + i, 24), value=10 * i)  # wide: shorter side 24
        save_image(root / "dogs" / f"{i}.jpg", (20, 50), value=200 - i)  # tall
    (root / "dogs" / "broken.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    manifest, train_split, test_split = prepared(
        tmp_path, source="imagefolder", root=str(root), image_size=16, test_fraction=0.25
    )
    assert manifest["class_names"] == ["cats", "dogs"]
    assert manifest["corrupt_skipped"] == 1 and manifest["corrupt_files"][0].endswith("broken.jpg")
    assert train_split.images.shape[1:] == (3, 16, 16)
    assert len(train_split.images) + len(test_split.images) == 12
    assert set(np.unique(np.concatenate([train_split.labels, test_split.labels]))) == {0, 1}


def test_imagefolder_corrupt_file_fails_with_its_name(tmp_path):
    root = tmp_path / "images"
    for i in range(4):
        save_image(root / f"{i}.png", (16, 16))
    (root / "bad.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"bad\.png: cannot read this image.*data.on_corrupt: skip"):
        prepared(tmp_path, source="imagefolder", root=str(root), image_size=16, on_corrupt="fail")


def test_imagefolder_unlabelled_gray_stays_one_channel(tmp_path):
    root = tmp_path / "images"
    for i in range(5):
        save_image(root / f"{i}.png", (32, 32), mode="L", value=40 * i)
    manifest, train_split, test_split = prepared(
        tmp_path, source="imagefolder", root=str(root), image_size=16
    )
    assert train_split.images.shape[1] == 1 and train_split.labels is None and manifest["channels"] == 1
    assert len(test_split.images) == 1


def test_channel_conversion_to_rgb_and_back(tmp_path):
    root = tmp_path / "images"
    for i in range(5):
        save_image(root / f"{i}.png", (16, 16), value=20 * i)
    _, rgb, _ = prepared(tmp_path / "a", source="imagefolder", root=str(root), image_size=16)
    _, gray, _ = prepared(tmp_path / "b", source="imagefolder", root=str(root), image_size=16, channels=1)
    assert rgb.images.shape[1] == 3 and gray.images.shape[1] == 1
    expected = np.round(rgb.images.astype(float).transpose(0, 2, 3, 1) @ [0.299, 0.587, 0.114])
    np.testing.assert_allclose(gray.images[:, 0], expected, atol=1)


def test_celeba_aligned_folder_with_partition_file(tmp_path):
    folder = tmp_path / "celeba" / "img_align_celeba"
    names = [f"{i:06d}.jpg" for i in range(1, 9)]
    for name in names:
        save_image(folder / name, (178, 218))  # CelebA's aligned size
    (folder / "000009.jpg").write_bytes(b"")  # empty file: unreadable
    split_ids = [0, 0, 0, 0, 1, 1, 2, 2]
    partition = "\n".join(f"{n} {s}" for n, s in zip(names, split_ids, strict=True)) + "\n000009.jpg 0\n"
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text(partition)
    manifest, train_split, test_split = prepared(tmp_path, source="celeba", root=str(tmp_path), image_size=32)
    assert train_split.images.shape == (6, 3, 32, 32) and test_split.images.shape == (2, 3, 32, 32)
    assert train_split.labels is None and manifest["corrupt_skipped"] == 1


def test_celeba_absent_says_where_to_put_the_files(tmp_path):
    expected = tmp_path / "img_align_celeba" / "000001.jpg"
    with pytest.raises(DataError, match=f"no img_align_celeba/ folder.*so that {expected} exists"):
        prepared(tmp_path, source="celeba", root=str(tmp_path))


def test_digits_from_scikit_learn(tmp_path):
    manifest, train_split, test_split = prepared(tmp_path, source="digits", image_size=8, test_fraction=0.2)
    assert len(train_split.images) + len(test_split.images) == 1797
    assert train_split.images.shape[1:] == (1, 8, 8) and train_split.images.max() == 255
    assert manifest["splits"]["train"]["num_classes"] == 10


def test_exact_duplicates_are_removed(tmp_path):
    root = tmp_path / "images"
    for i in range(6):
        save_image(root / f"{i}.png", (16, 16), value=50 * (i % 3))  # three distinct images, twice each
    manifest, train_split, test_split = prepared(
        tmp_path, source="imagefolder", root=str(root), image_size=16, deduplicate=True, test_fraction=0.2
    )
    removed = manifest["duplicates_removed"]
    assert removed["train"] + removed["test"] >= 2
    assert len({img.tobytes() for img in train_split.images}) == len(train_split.images)


def test_conditional_model_on_unlabelled_data_fails_before_training(tmp_path):
    root = tmp_path / "images"
    for i in range(40):
        save_image(root / f"{i}.png", (16, 16), value=6 * i)
    prepare(
        parse_params({"data": {"source": "imagefolder", "root": str(root), "image_size": 16}}),
        Layout(tmp_path),
    )
    params = tiny_params(root, **{"model.conditional": True, "train.batch_size": 8})
    params["data"] = {"source": "imagefolder", "root": str(root), "image_size": 16}
    layout = Layout(tmp_path)
    paths = TrainPaths(
        prepared=layout.prepared,
        generator=layout.generator,
        checkpoints=layout.checkpoints,
        samples=layout.samples,
        history=layout.train_history,
    )
    with pytest.raises(ConfigError, match="model.conditional: the prepared data .* has no labels"):
        train(parse_params(params), paths)
    assert not layout.generator.exists() and not layout.checkpoints.exists()
