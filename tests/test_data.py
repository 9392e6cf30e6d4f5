import json
from pathlib import Path

import numpy as np
import pytest

from ganops.config import parse_params
from ganops.data.idx import read_idx
from ganops.data.prepared import fit_to_size, load_split, read_manifest
from ganops.errors import DataError
from ganops.files import sha256_file
from ganops.stages import Layout
from ganops.stages.prepare import run as prepare

from conftest import fabricate_images, write_idx

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def test_idx_roundtrip(tmp_path):
    images, _ = fabricate_images(5, np.random.default_rng(1))
    write_idx(tmp_path / "x.gz", images)
    np.testing.assert_array_equal(read_idx(tmp_path / "x.gz"), images)


def test_truncated_idx_names_the_file(tmp_path):
    images, _ = fabricate_images(5, np.random.default_rng(1))
    write_idx(tmp_path / "x.gz", images)
    import gzip

    data = gzip.decompress((tmp_path / "x.gz").read_bytes())
    (tmp_path / "cut").write_bytes(data[:-10])
    with pytest.raises(DataError, match="cut: truncated or corrupt"):
        read_idx(tmp_path / "cut")


def test_pad_keeps_every_pixel_centered():
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 1, 28, 28)
    padded = fit_to_size(images, 32)
    assert padded.shape == (2, 1, 32, 32)
    np.testing.assert_array_equal(padded[:, :, 2:30, 2:30], images)
    assert padded[:, :, :2].sum() == 0


def test_resize_when_far_from_target():
    images = np.full((3, 1, 28, 28), 200, dtype=np.uint8)
    small = fit_to_size(images, 16)
    assert small.shape == (3, 1, 16, 16) and small.dtype == np.uint8
    assert np.all(small == 200)  # a flat image stays flat through antialiased resizing


def test_prepare_fabricated_idx_writes_arrays_and_manifest(tiny_idx, tmp_path):
    params = parse_params({"data": {"root": str(tiny_idx), "image_size": 32}})
    manifest = prepare(params, Layout(tmp_path))
    folder = tmp_path / "data" / "prepared"
    assert manifest == read_manifest(folder)
    for split, count in (("train", 512), ("test", 256)):
        entry = manifest["splits"][split]
        assert entry["count"] == count and entry["shape"] == [1, 32, 32]
        assert entry["images_sha256"] == sha256_file(folder / entry["images"])
        data = load_split(folder, split, verify=True)
        assert data.images.dtype == np.uint8 and data.images.shape == (count, 1, 32, 32)
        assert data.labels.shape == (count,)
    assert manifest["value_mapping"]["range"] == [-1.0, 1.0]
    assert json.loads((folder / "manifest.json").read_text())["source"] == "fashion-mnist"


def test_prepare_caps_split_sizes(tiny_idx, tmp_path):
    params = parse_params({"data": {"root": str(tiny_idx), "max_train": 100, "max_test": 10}})
    manifest = prepare(params, Layout(tmp_path))
    assert manifest["splits"]["train"]["count"] == 100
    assert manifest["splits"]["test"]["count"] == 10


def test_missing_data_says_how_to_get_it(tmp_path):
    params = parse_params({"data": {"root": str(tmp_path / "empty")}})
    with pytest.raises(DataError, match="does not hold the four IDX files"):
        prepare(params, Layout(tmp_path))
    assert not (tmp_path / "data" / "prepared").exists()


@pytest.mark.skipif(
    not DEBIAN_FASHION_MNIST.is_dir(), reason="needs Debian's dataset-fashion-mnist (make setup)"
)
def test_prepare_real_fashion_mnist(tmp_path):
    manifest = prepare(parse_params({}), Layout(tmp_path))
    assert manifest["origin"] == str(DEBIAN_FASHION_MNIST)
    assert manifest["splits"]["train"]["count"] == 60_000
    assert manifest["splits"]["test"]["count"] == 10_000
    assert manifest["native_shape"] == [1, 28, 28] and manifest["splits"]["train"]["shape"] == [1, 32, 32]
    test = load_split(tmp_path / "data" / "prepared", "test")
    assert sorted(np.unique(test.labels)) == list(range(10))
