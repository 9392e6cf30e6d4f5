"""A user's own folder of images: every decoding case checked by its pixels, then the whole DAG."""

from __future__ import annotations

import json
import struct
import subprocess
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw

from ganops.config import parse_params
from ganops.data.images import DecodeReport, decode
from ganops.data.prepared import load_split
from ganops.errors import DataError
from ganops.stages import Layout
from ganops.stages.prepare import run as prepare
from test_pipeline_dvc import STAGES, new_project, ran

from conftest import tiny_params

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


def decoded(path, size=32, background=(255, 255, 255), on_corrupt="skip") -> tuple[np.ndarray, DecodeReport]:
    """(H, W, 3) pixels of one file, with PIL's warnings turned into errors (none may be raised)."""
    report = DecodeReport()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        array = decode(path, size, on_corrupt, report, background)
    return (None if array is None else array.transpose(1, 2, 0)), report


def icon_rgba(size=32, hidden=GREEN) -> Image.Image:
    """A red disc on a fully transparent background whose hidden colour is ``hidden``."""
    image = Image.new("RGBA", (size, size), (*hidden, 0))
    ImageDraw.Draw(image).ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=(*RED, 255))
    return image


@pytest.mark.parametrize("background", [(255, 255, 255), (0, 0, 0), (10, 120, 200)])
def test_alpha_is_composited_onto_the_background(tmp_path, background):
    icon_rgba().save(tmp_path / "icon.png")
    pixels, _ = decoded(tmp_path / "icon.png", background=background)
    for corner in (pixels[0, 0], pixels[0, -1], pixels[-1, 0], pixels[-1, -1]):
        assert tuple(corner) == background  # not the green hidden under alpha 0
    assert tuple(pixels[16, 16]) == RED


def test_half_transparent_pixels_blend_with_the_background(tmp_path):
    Image.new("RGBA", (16, 16), (*RED, 128)).save(tmp_path / "half.png")
    pixels, _ = decoded(tmp_path / "half.png", size=16, background=(0, 0, 255))
    np.testing.assert_allclose(pixels[8, 8], (128, 0, 127), atol=1)


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_palette_with_transparency_goes_through_rgba_without_a_warning(tmp_path, suffix):
    image = Image.new("P", (32, 32), 0)
    image.putpalette([*GREEN, *RED] + [0] * 762)
    ImageDraw.Draw(image).rectangle((8, 8, 23, 23), fill=1)
    image.save(tmp_path / f"palette{suffix}", transparency=0)  # index 0 (green) is transparent
    pixels, _ = decoded(tmp_path / f"palette{suffix}", background=(0, 0, 0))
    assert tuple(pixels[0, 0]) == (0, 0, 0) and tuple(pixels[16, 16]) == RED


def test_rgb_png_with_a_transparent_colour_key(tmp_path):
    image = Image.new("RGB", (16, 16), GREEN)
    ImageDraw.Draw(image).rectangle((4, 4, 11, 11), fill=BLUE)
    image.save(tmp_path / "trns.png", transparency=GREEN)  # PNG tRNS chunk: green means transparent
    pixels, _ = decoded(tmp_path / "trns.png", size=16)
    assert tuple(pixels[0, 0]) == (255, 255, 255) and tuple(pixels[8, 8]) == BLUE


def test_gray_with_alpha_stays_gray_on_a_gray_background_only(tmp_path):
    gray = Image.new("L", (16, 16), 60)
    alpha = Image.new("L", (16, 16), 0)
    ImageDraw.Draw(alpha).rectangle((4, 4, 11, 11), fill=255)
    Image.merge("LA", (gray, alpha)).save(tmp_path / "la.png")
    pixels, report = decoded(tmp_path / "la.png", size=16)
    assert tuple(pixels[0, 0]) == (255, 255, 255) and tuple(pixels[8, 8]) == (60, 60, 60)
    assert report.all_gray
    pixels, report = decoded(tmp_path / "la.png", size=16, background=(200, 0, 0))
    assert tuple(pixels[0, 0]) == (200, 0, 0) and not report.all_gray


def test_sixteen_bit_png_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64).round().astype(np.uint16)
    Image.fromarray(np.tile(ramp, (64, 1))).save(tmp_path / "deep.png")
    with Image.open(tmp_path / "deep.png") as check:
        assert check.mode.startswith("I")  # really stored with 16-bit samples
    pixels, report = decoded(tmp_path / "deep.png", size=64)
    row = pixels[10, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255  # the full range, not everything above 255 white
    assert np.all(np.diff(row) > 0)  # every one of the 64 levels keeps its order and stays distinct
    np.testing.assert_allclose(row, ramp / 257, atol=0.5)
    assert report.all_gray


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    image = Image.new("CMYK", (32, 32), (0, 255, 255, 0))  # red in CMYK
    ImageDraw.Draw(image).rectangle((0, 0, 15, 31), fill=(255, 255, 0, 0))  # left half blue
    image.save(tmp_path / "print.jpg", quality=95)
    with Image.open(tmp_path / "print.jpg") as check:
        assert check.mode == "CMYK"
    pixels, _ = decoded(tmp_path / "print.jpg")
    np.testing.assert_allclose(pixels[16, 28], RED, atol=12)
    np.testing.assert_allclose(pixels[16, 4], BLUE, atol=12)


def test_exif_orientation_is_applied(tmp_path):
    # A phone held sideways stores the sensor's image (tall: red top, blue bottom) and EXIF
    # orientation 6, "rotate 90 degrees clockwise to view": upright, red is on the right.
    stored = Image.new("RGB", (20, 40), BLUE)
    ImageDraw.Draw(stored).rectangle((0, 0, 19, 19), fill=RED)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    pixels, _ = decoded(tmp_path / "phone.jpg", size=20)  # the 40x20 upright image, centre-cropped
    np.testing.assert_allclose(pixels[10, 2], BLUE, atol=12)
    np.testing.assert_allclose(pixels[10, 17], RED, atol=12)
    np.testing.assert_allclose(pixels[2, 10], pixels[17, 10], atol=12)  # no top/bottom split


@pytest.mark.parametrize("suffix", [".gif", ".png", ".webp"])
def test_animated_image_takes_its_first_frame(tmp_path, suffix):
    frames = [Image.new("RGB", (16, 16), colour) for colour in (RED, BLUE, GREEN)]
    path = tmp_path / f"anim{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0, lossless=True)
    with Image.open(path) as check:
        assert getattr(check, "n_frames", 1) == 3
    pixels, _ = decoded(path, size=16)
    np.testing.assert_allclose(pixels[8, 8], RED, atol=2)


def test_large_jpeg_decoded_at_reduced_scale_matches_a_full_decode(tmp_path):
    from ganops.data.images import resize_center_crop

    y, x = np.mgrid[0:600, 0:800]
    smooth = np.stack([x * 255 // 800, y * 255 // 600, (x + y) * 255 // 1400], -1).astype(np.uint8)
    Image.fromarray(smooth).save(tmp_path / "photo.jpg", quality=95)
    pixels, _ = decoded(tmp_path / "photo.jpg", size=32)  # decoded at 1/8 scale: 100x75
    with Image.open(tmp_path / "photo.jpg") as full:
        reference = np.asarray(resize_center_crop(full.convert("RGB"), 32)).astype(int)
    assert np.abs(pixels.astype(int) - reference).max() <= 3


def bomb_png(path, width, height):
    """A PNG whose header claims width x height gray pixels, over a few bytes of data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\0" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [12_000, 40_000])  # 144 MP: over our limit; 1.6 GP: over PIL's too
def test_decompression_bomb_is_corrupt(tmp_path, side):
    path = bomb_png(tmp_path / "bomb.png", side, side)
    pixels, report = decoded(path)
    assert pixels is None and report.skipped == [str(path)]
    with pytest.raises(DataError, match=r"bomb\.png: cannot read this image .*decompression bomb"):
        decoded(path, on_corrupt="fail")


def test_prepare_applies_data_background_and_records_it(tmp_path):
    root = tmp_path / "icons"
    root.mkdir()
    for i in range(10):
        icon_rgba(hidden=(0, 255, i)).save(root / f"{i}.png")
    params = parse_params(
        {"data": {"source": "imagefolder", "root": str(root), "image_size": 16, "background": [30, 60, 90]}}
    )
    manifest = prepare(params, Layout(tmp_path / "out"))
    train = load_split(tmp_path / "out" / "data" / "prepared", "train")
    assert manifest["background"] == [30, 60, 90] and train.images.shape[1] == 3
    assert np.all(train.images[:, :, 0, 0] == np.array([30, 60, 90]))
    assert manifest["corrupt_skipped"] == 0


def test_hidden_files_and_folders_are_not_images(tmp_path):
    root = tmp_path / "photos"
    for name in ("cats", "dogs"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            icon_rgba(16).save(root / name / f"{i}.png")
        (root / name / f"._{0}.png").write_bytes(b"\0\5\x16\7 AppleDouble")  # macOS resource fork
    (root / ".thumbnails").mkdir()
    icon_rgba(16).save(root / ".thumbnails" / "cats.png")  # not a class, not an image of one
    (root / "dogs" / ".cache").mkdir()
    icon_rgba(16).save(root / "dogs" / ".cache" / "9.png")
    params = parse_params(
        {"data": {"source": "imagefolder", "root": str(root), "image_size": 16, "on_corrupt": "fail"}}
    )
    manifest = prepare(params, Layout(tmp_path / "out"))
    assert manifest["class_names"] == ["cats", "dogs"]
    assert sum(s["count"] for s in manifest["splits"].values()) == 6


def test_background_param_is_checked():
    with pytest.raises(Exception, match=r"data.background: must be white, black or three integers"):
        parse_params({"data": {"background": [255, 0]}})


# --- the whole DAG on a user's folder, under real `dvc repro` in a temporary repository -------------


def fabricated_icons(folder, count, rng, shapes=("disc", "square", "triangle"), size_range=(24, 72)):
    """RGBA icons of mixed sizes: a coloured shape on a transparent background hiding a random colour."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        size = int(rng.integers(*size_range))
        image = Image.new("RGBA", (size, size), (*(int(v) for v in rng.integers(0, 256, 3)), 0))
        draw, m = ImageDraw.Draw(image), size // 6
        fill = (*(int(v) for v in rng.integers(0, 200, 3)), 255)
        shape = shapes[i % len(shapes)]
        if shape == "disc":
            draw.ellipse((m, m, size - m, size - m), fill=fill)
        elif shape == "square":
            draw.rectangle((m, m, size - m, size - m), fill=fill)
        elif shape == "triangle":
            draw.polygon([(size / 2, m), (size - m, size - m), (m, size - m)], fill=fill)
        else:  # "ring" and "dot": two classes that differ only in a hole's size (hard to tell apart)
            hole = m * (2 if shape == "ring" else 1.6)
            draw.ellipse((m, m, size - m, size - m), fill=fill)
            draw.ellipse(
                (size / 2 - hole, size / 2 - hole, size / 2 + hole, size / 2 + hole), fill=(0, 0, 0, 0)
            )
        image.save(folder / f"{shape}_{i:04d}.png")
    return folder


def fabricated_faces(folder, count, rng, size=(89, 109)):
    """Face-like JPEG photos (CelebA's aligned aspect): a skin-toned oval, hair, eyes and a mouth."""
    folder.mkdir(parents=True, exist_ok=True)
    w, h = size
    for i in range(count):
        image = Image.new("RGB", size, tuple(int(v) for v in rng.integers(40, 230, 3)))
        draw = ImageDraw.Draw(image)
        skin = tuple(int(v) for v in np.array([225, 180, 150]) * rng.uniform(0.45, 1.05))
        cx, cy, rx, ry = w / 2 + rng.normal(0, 2), h * 0.55, w * rng.uniform(0.3, 0.36), h * 0.33
        draw.ellipse(
            (cx - rx - 3, cy - ry - 6, cx + rx + 3, cy + ry * 0.2),
            fill=tuple(int(v) for v in rng.integers(10, 120, 3)),
        )
        draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=skin)
        for side in (-1, 1):
            ex, ey = cx + side * rx * 0.4, cy - ry * 0.15
            draw.ellipse((ex - 6, ey - 3, ex + 6, ey + 3), fill=(245, 245, 245))
            draw.ellipse((ex - 2.5, ey - 2.5, ex + 2.5, ey + 2.5), fill=(30, 20, 10))
        my, smile = cy + ry * 0.45, rng.uniform(2, 6)
        draw.arc((cx - 10, my - smile, cx + 10, my + smile), 0, 180, fill=(150, 40, 50), width=2)
        image.save(folder / f"{i + 1:06d}.jpg", quality=90)
    return folder


def repro(root, env, *targets) -> str:
    result = subprocess.run(
        ["dvc", "repro", *targets], cwd=root, env=env, capture_output=True, text=True, timeout=1200
    )
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"dvc repro failed:\n{output[-4000:]}")
    return output


def assert_registered(root, image_shape):
    manifest = json.loads((root / "data/prepared/manifest.json").read_text())
    assert manifest["splits"]["train"]["shape"] == image_shape
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert metrics["fid_domain"] >= 0
    registry = json.loads((root / "reports/registry.json").read_text())
    assert registry["version"] == "1" and "champion" in registry["aliases"]
    sidecar = json.loads((root / "models/generator.onnx.json").read_text())
    assert (
        sidecar["parity"]["passed"]
        and json.loads((root / "logs/export.json").read_text())["parity_max_abs_diff"] <= 1e-3
    )
    return manifest


def folder_params(root, source, image_size, **data):
    params = tiny_params(root, **{"train.batch_size": 16, "train.checkpoint_every": 10})
    params["data"] = {"source": source, "root": str(root), "image_size": image_size, **data}
    return params


@pytest.mark.slow
def test_flat_folder_of_rgba_icons_runs_the_dag_to_a_registered_version(tmp_path):
    raw = fabricated_icons(tmp_path / "project" / "icons", 240, np.random.default_rng(1))
    root, env = new_project(tmp_path / "project", folder_params(raw, "imagefolder", 32))
    output = repro(root, env)
    assert ran(output) == STAGES
    manifest = assert_registered(root, [3, 32, 32])
    assert manifest["class_names"] == [] and "num_classes" not in manifest["splits"]["train"]
    train = load_split(root / "data/prepared", "train").images
    assert np.all(train[:, :, 0, 0] == 255)  # every icon on the white background

    # The same colour folder teaches colorization: an experiment that reuses prepare and the evaluator.
    output = subprocess.run(
        ["dvc", "exp", "run", "-S", "task=colorize"], cwd=root, env=env, capture_output=True, text=True
    )
    assert output.returncode == 0, output.stderr[-2000:]
    assert ran(output.stdout) == ["validate", "evalset", "train", "evaluate", "export", "register"]
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert metrics["baseline"]["method"] == "grey" and metrics["baseline"]["colourfulness"] == 0
    assert 0 < metrics["colourfulness"] and metrics["colourfulness_real"] > 0  # grey < GAN, grey < real
    registry = json.loads((root / "reports/registry.json").read_text())
    assert registry["model_name"] == "ganops-colorize" and registry["version"] == "1"


@pytest.mark.slow
def test_faces_in_celebas_layout_run_the_dag_at_64_pixels(tmp_path):
    """CelebA's layout (img_align_celeba/) of JPEG face photos, to a registered 64 px model."""
    raw = tmp_path / "project" / "faces"
    fabricated_faces(raw / "img_align_celeba", 200, np.random.default_rng(2))
    root, env = new_project(tmp_path / "project", folder_params(raw, "celeba", 64))
    output = repro(root, env)
    assert ran(output) == STAGES
    assert_registered(root, [3, 64, 64])


def test_a_flat_folder_of_face_photos_prepares_at_64_pixels(tmp_path):
    """The same photos as a user's flat folder (the icons above take a flat folder through the DAG)."""
    raw = fabricated_faces(tmp_path / "faces", 200, np.random.default_rng(2))
    params = parse_params(folder_params(raw, "imagefolder", 64))
    prepare(params, Layout(tmp_path / "project"))
    manifest = json.loads((tmp_path / "project/data/prepared/manifest.json").read_text())
    assert manifest["splits"]["train"]["shape"] == [3, 64, 64] and manifest["class_names"] == []
    assert sum(split["count"] for split in manifest["splits"].values()) == 200


@pytest.fixture(scope="module")
def labelled_project(tmp_path_factory):
    """Class sub-folders, two of them hard to tell apart, plus three unreadable files and a note."""
    base = tmp_path_factory.mktemp("labelled")
    raw, rng = base / "shapes", np.random.default_rng(3)
    for name in ("disc", "square", "ring", "dot"):
        fabricated_icons(raw / name, 60, rng, shapes=(name,))
    good = (raw / "disc" / "disc_0000.png").read_bytes()
    (raw / "disc" / "truncated.png").write_bytes(good[: len(good) // 2])
    (raw / "square" / "empty.png").write_bytes(b"")
    (raw / "ring" / "notes.png").write_text("not an image, whatever its name says\n")
    (raw / "README.txt").write_text("a text file beside the class folders is not an image: ignored\n")
    return new_project(base, folder_params(raw, "imagefolder", 32))


@pytest.mark.slow
def test_added_images_rerun_prepare(labelled_project):
    root, env = labelled_project
    repro(root, env, "prepare")
    before = json.loads((root / "data/prepared/manifest.json").read_text())
    assert before["corrupt_skipped"] == 3 and before["class_names"] == ["disc", "dot", "ring", "square"]
    assert ran(repro(root, env, "prepare")) == ["validate"]  # nothing new: prepare stays

    fabricated_icons(root / "shapes" / "new", 5, np.random.default_rng(4), shapes=("disc",))
    for path in (root / "shapes" / "new").iterdir():
        path.rename(root / "shapes" / "disc" / f"added_{path.name}")
    assert ran(repro(root, env, "prepare")) == ["validate", "prepare"]
    after = json.loads((root / "data/prepared/manifest.json").read_text())
    total = lambda m: sum(s["count"] for s in m["splits"].values())  # noqa: E731
    assert total(after) == total(before) + 5


@pytest.mark.slow
def test_labelled_folder_with_hard_classes_and_corrupt_files_runs_the_dag(labelled_project):
    root, env = labelled_project
    repro(root, env)
    manifest = assert_registered(root, [3, 32, 32])
    assert manifest["splits"]["train"]["num_classes"] == 4 and manifest["corrupt_skipped"] == 3
