"""data.crop: random_patches on small fabricated photos whose pixels say where they came from.

Every photo is R = column, G = row, B = a number of its own, so a patch shows its photo (B) and
its position in it (R, G): a patch cut at native resolution is a run of consecutive values.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ganops import catalog
from ganops.config import parse_params
from ganops.data import images as images_module
from ganops.data.patches import patch_rng
from ganops.data.prepared import load_split
from ganops.data.sources import SOURCES
from ganops.errors import ConfigError, DataError
from ganops.stages import Layout
from ganops.stages.prepare import run as prepare

# The manifest keys of resize mode; the pinned default run's data/prepared hash (dvc.lock) needs them unchanged.
RESIZE_MANIFEST_KEYS = {
    "source", "origin", "native_shape", "image_size", "channels", "deduplicate", "duplicates_removed",
    "corrupt_skipped", "corrupt_files", "class_names", "background", "value_mapping", "splits",
}  # fmt: skip


def save_photo(path, number: int, width: int = 60, height: int = 40) -> None:
    """R = column, G = row, B = ``number``; PNG, so every value survives."""
    rows, cols = np.mgrid[0:height, 0:width]
    pixels = np.stack([cols, rows, np.full_like(cols, number)], axis=-1).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def prepared(out, **data):
    manifest = prepare(parse_params({"data": data}), Layout(out))
    folder = out / "data" / "prepared"
    return manifest, load_split(folder, "train"), load_split(folder, "test")


def patches(root, out, **data):
    data.setdefault("test_fraction", 0.3)  # 10 photos: 7 train, 3 test
    return prepared(out, source="imagefolder", root=str(root), crop="random_patches", **data)


@pytest.fixture
def photos(tmp_path):
    root = tmp_path / "photos"
    for i in range(10):
        save_photo(root / f"{i}.png", number=20 * i)
    return root


def test_each_photo_gives_patches_per_image_patches_of_image_size(photos, tmp_path):
    manifest, train, test = patches(photos, tmp_path / "out", image_size=16, patches_per_image=5)
    assert train.images.shape == (7 * 5, 3, 16, 16) and test.images.shape == (3 * 5, 3, 16, 16)
    assert manifest["crop"] == "random_patches" and manifest["patches_per_image"] == 5
    assert manifest["source_images"] == {"train": 7, "test": 3}
    assert manifest["native_max_side"] == 1024 and manifest["downscaled_images"] == 0


def test_patches_are_cut_at_native_resolution_inside_the_photo(photos, tmp_path):
    _, train, _ = patches(photos, tmp_path / "out", image_size=16, patches_per_image=5)
    for patch in train.images:
        left, top = int(patch[0, 0, 0]), int(patch[1, 0, 0])
        np.testing.assert_array_equal(patch[0], np.tile(np.arange(left, left + 16), (16, 1)))
        np.testing.assert_array_equal(patch[1], np.tile(np.arange(top, top + 16)[:, None], (1, 16)))
        assert left + 16 <= 60 and top + 16 <= 40
    corners = {(int(p[0, 0, 0]), int(p[1, 0, 0])) for p in train.images}
    assert len(corners) > 20  # positions are drawn, not one fixed crop


def test_no_test_patch_comes_from_a_training_photo(photos, tmp_path):
    _, train, test = patches(photos, tmp_path / "out", image_size=16, patches_per_image=5)
    train_photos, test_photos = set(train.images[:, 2, 0, 0]), set(test.images[:, 2, 0, 0])
    assert train_photos.isdisjoint(test_photos) and len(train_photos | test_photos) == 10
    # a photo's patches are consecutive rows
    assert (train.images[:, 2, 0, 0].reshape(7, 5) == train.images[::5, 2, 0, 0][:, None]).all()


def test_the_same_folder_gives_the_same_bytes(photos, tmp_path):
    first, _, _ = patches(photos, tmp_path / "a", image_size=16, patches_per_image=5)
    second, _, _ = patches(photos, tmp_path / "b", image_size=16, patches_per_image=5)
    assert first["splits"] == second["splits"]


def test_patch_positions_are_pinned_to_split_and_index():
    """The positions' stream is a pure function of (split, index), the same on any machine."""
    assert patch_rng("train", 0).integers(0, 1000, 4).tolist() == [422, 486, 867, 485]
    assert patch_rng("test", 0).integers(0, 1000, 4).tolist() == [664, 451, 544, 616]
    assert patch_rng("train", 1).integers(0, 1000, 4).tolist() != [422, 486, 867, 485]


def test_labels_are_repeated_for_every_patch(tmp_path):
    root = tmp_path / "photos"
    for i in range(6):
        save_photo(root / "cats" / f"{i}.png", number=i)
        save_photo(root / "dogs" / f"{i}.png", number=100 + i)
    manifest, train, test = patches(root, tmp_path / "out", image_size=16, patches_per_image=3)
    assert manifest["class_names"] == ["cats", "dogs"]
    for split in (train, test):
        assert len(split.labels) == len(split.images)
        np.testing.assert_array_equal(split.labels, (split.images[:, 2, 0, 0] >= 100).astype(np.int64))


def test_caps_count_patches_and_the_manifest_counts_their_photos(photos, tmp_path):
    manifest, train, _ = patches(photos, tmp_path / "out", image_size=16, patches_per_image=5, max_train=7)
    assert len(train.images) == 7 and manifest["source_images"]["train"] == 2


def test_photos_above_the_cap_are_downscaled_first(tmp_path):
    root = tmp_path / "photos"
    for i in range(3):
        save_photo(root / f"{i}.png", number=i, width=60, height=40)  # shorter side 40 -> 20
    manifest, train, _ = patches(
        root, tmp_path / "out", image_size=16, patches_per_image=2, native_max_side=20
    )
    assert (
        manifest["downscaled_images"] == 3
        and manifest["native_max_side"] == 20
        and train.images.shape[1:] == (3, 16, 16)
    )
    steps = np.diff(train.images[:, 0].astype(int), axis=2)  # R = original column: +2 per column now
    assert abs(steps[:, 1:-1, 1:-1].mean() - 2) < 0.1


def test_a_photo_smaller_than_image_size_is_refused_with_its_name(photos, tmp_path):
    save_photo(photos / "thumb.png", number=7, width=40, height=12)
    with pytest.raises(DataError, match=r"thumb\.png \(40x12\).*not upscaled.*lower data.image_size"):
        patches(photos, tmp_path / "out", image_size=16)


def test_random_patches_on_an_array_source_is_refused_by_validation():
    with pytest.raises(ConfigError, match=r"data.crop: .*fashion-mnist.*data.crop=resize.*imagefolder"):
        parse_params({"data": {"source": "fashion-mnist", "crop": "random_patches"}})


def test_the_catalog_names_exactly_the_sources_that_decode_files():
    folder_sources = [n for n in SOURCES.names() if SOURCES.get(n).__module__ == "ganops.data.folders"]
    assert folder_sources == sorted(catalog.FILE_SOURCES)


def test_resize_mode_is_unchanged(tmp_path):
    root = tmp_path / "photos"
    for i in range(6):
        save_photo(root / f"{i}.png", number=30 * i, width=50 + i, height=30)
    default, train, test = prepared(tmp_path / "a", source="imagefolder", root=str(root), image_size=16)
    explicit, _, _ = prepared(
        tmp_path / "b",
        source="imagefolder",
        root=str(root),
        image_size=16,
        crop="resize",
        patches_per_image=3,
    )
    assert set(default) == RESIZE_MANIFEST_KEYS and explicit["splits"] == default["splits"]
    assert len(train.images) + len(test.images) == 6  # one image per file
    for image in np.concatenate([train.images, test.images]):  # shorter side resized, centre crop
        path = root / f"{image[2, 0, 0] // 30}.png"
        expected = images_module.resize_center_crop(Image.open(path).convert("RGB"), 16)
        np.testing.assert_array_equal(image, np.asarray(expected).transpose(2, 0, 1))
