"""Restoration judged as a user judges it: on whole held-out photos at their own size, not on patches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from ganops.config import parse_params
from ganops.data.prepared import load_image_list, load_split, load_whole_test
from ganops.stages import Layout
from ganops.stages.evalset import run as make_evalset
from ganops.stages.prepare import run as prepare

from conftest import tiny_params

SIZES = [(52, 70), (64, 45), (40, 40), (90, 60), (50, 81), (44, 66), (72, 48), (60, 60), (38, 57), (80, 50)]


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory) -> Path:
    """Ten colour "photos" of different sizes: smooth fields with texture, so that no crop is flat."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(1)
    for i, (height, width) in enumerate(SIZES):
        ys, xs = np.mgrid[0:height, 0:width]
        phase = rng.uniform(0, 6, size=3)
        image = np.stack([np.sin(xs / (4 + c) + ys / (7 - c) + phase[c]) for c in range(3)], axis=-1)
        pixels = ((image + 1) * 110 + rng.normal(0, 8, image.shape)).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"photo{i}.png")
    return folder


def photo_params(folder: Path, task: str = "superres", **overrides):
    data = {"source": "imagefolder", "root": str(folder), "image_size": 16, "crop": "random_patches",
            "patches_per_image": 8, "test_fraction": 0.4, "whole_test_side": 64}  # fmt: skip
    return parse_params(tiny_params(folder, **{"task": task, "data": data, **overrides}))


@pytest.fixture(scope="module")
def project(photo_folder, tmp_path_factory) -> Layout:
    layout = Layout(tmp_path_factory.mktemp("whole"))
    prepare(photo_params(photo_folder), layout)
    return layout


def test_prepare_keeps_the_held_out_photos_whole_beside_the_patches(project):
    whole = load_whole_test(project.prepared)
    test = load_split(project.prepared, "test")
    assert len(whole) == 4 and len(test.images) == 4 * 8  # 40% of 10 files, 8 patches each
    # Each whole photo: its longer side shrunk to data.whole_test_side (64), its aspect kept.
    assert all(max(p.shape[1:]) <= 64 and p.dtype == np.uint8 and p.shape[0] == 3 for p in whole)
    assert len({p.shape for p in whole}) > 1
    shapes = sorted(tuple(p.shape[1:]) for p in whole)
    originals = sorted(SIZES)
    assert all(any(abs(h / w - oh / ow) < 0.06 for oh, ow in originals) for h, w in shapes)


def test_the_evaluation_set_is_the_whole_photos_seeded_and_rebuilt_when_a_param_changes(
    photo_folder, project
):
    params = photo_params(photo_folder)
    first = make_evalset(params, project)
    inputs = (project.evalset / "inputs.npz").read_bytes()
    assert make_evalset(params, project) == first and (project.evalset / "inputs.npz").read_bytes() == inputs
    assert first["whole_photos"] and first["count"] == 4

    targets = load_image_list(project.evalset / "targets.npz")
    lows = load_image_list(project.evalset / "inputs.npz")
    whole = load_whole_test(project.prepared)
    multiple = 2**params.restore.depth * 2  # the U-Net's multiple at the x2 input
    for target, low, photo in zip(targets, lows, whole, strict=True):
        height, width = target.shape[1:]
        assert height % multiple == 0 and width % multiple == 0 and height > 16 and width > 16
        assert np.array_equal(target, photo[:, :height, :width])  # bottom and right trimmed, nothing else
        assert low.shape == (3, height // 2, width // 2)  # the task's factor
    assert first["pixels"] == sum(t.shape[1] * t.shape[2] for t in targets)

    other_seed = make_evalset(photo_params(photo_folder, task="inpaint"), project)
    reseeded = make_evalset(photo_params(photo_folder, task="inpaint", seed=8), project)
    assert other_seed["inputs"]["sha256"] != reseeded["inputs"]["sha256"]  # masks come from the seed
    masks = [x[-1] for x in load_image_list(project.evalset / "inputs.npz")]
    holes = [float(m.mean()) for m in masks]
    assert all(0.1 <= h <= 0.9 for h in holes)  # restore.inpaint.coverage, sized to each photo
    make_evalset(params, project)


def test_evaluate_scores_whole_photos_and_says_how_many_pixels(photo_folder, project):
    from ganops.stages.evaluate import run as evaluate
    from ganops.stages.evaluator import run as train_evaluator
    from ganops.stages.train import train_paths
    from ganops.training.loop import train

    params = photo_params(photo_folder, **{"train.max_steps": 4})
    train_evaluator(params, project)
    manifest = make_evalset(params, project)
    train(params, train_paths(project))
    report = evaluate(params, project)
    counts = report["counts"]
    assert counts["whole_photos"] and counts["evaluation_set"] == 4
    assert counts["pixels"] == manifest["pixels"]
    assert counts["tiles"] == counts["reference"] > 4  # the originals' 16 px tiles are the reference
    assert report["baseline"]["method"] == "bicubic"
    for scores in (report, report["baseline"]):
        assert (
            np.isfinite(scores["psnr_y"]) and 0 < scores["ssim_y"] < 1 and np.isfinite(scores["fid_domain"])
        )
    # The baseline's PSNR is the mean over the photos, each scored whole at its own size.
    from ganops import baselines
    from ganops.data.prepared import to_unit_range
    from ganops.metrics.restoration import psnr_ssim

    each = []
    for low, target in zip(
        *(load_image_list(project.evalset / f) for f in ("inputs.npz", "targets.npz")), strict=True
    ):
        upscaled = torch.from_numpy(baselines.bicubic(low[None], 3, 2))
        each.append(
            psnr_ssim(upscaled, to_unit_range(torch.from_numpy(target[None])), border=2)["psnr"].item()
        )
    assert report["baseline"]["psnr_y"] == pytest.approx(np.mean(each), abs=1e-3)
