"""The restoration tasks in the one training loop: degradations, networks, evaluation set, resume, scoring."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest
import torch

from ganops.cards import card
from ganops.config import parse_params
from ganops.data.prepared import load_image_list
from ganops.errors import ConfigError, DataError
from ganops.files import read_json
from ganops.models import ArchSpec, build_discriminator, build_generator
from ganops.models.io import load_generator
from ganops.runtime import Stream, stream
from ganops.stages import Layout
from ganops.stages.evalset import run as make_evalset
from ganops.stages.prepare import run as prepare
from ganops.stages.train import train_paths
from ganops.tasks import build_task, degrade
from ganops.training.loop import TrainPaths, train

from conftest import tiny_params

RESTORATIONS = ("inpaint", "superres", "colorize")


COLOUR: dict = {}  # the colour folder, set by the projects fixture


def params_for(data, task: str, **overrides):
    if task == "colorize":  # colour pictures: a folder of PNGs
        folder = COLOUR["folder"]
        overrides = {"data": {"source": "imagefolder", "root": str(folder), "image_size": 16}, **overrides}
    return parse_params(tiny_params(data, **{"task": task, "train.checkpoint_every": 4, **overrides}))


@pytest.fixture(scope="module")
def projects(tiny_idx, tiny_colour_folder, tmp_path_factory):
    """One prepared project per task: Fashion-MNIST-like grey for inpaint/superres, colour PNGs for colorize."""
    COLOUR["folder"] = tiny_colour_folder
    layouts = {}
    for task in RESTORATIONS:
        layout = Layout(tmp_path_factory.mktemp(task))
        prepare(params_for(tiny_idx, task), layout)
        layouts[task] = layout
    return layouts


def run_training(data, layout: Layout, task: str, **overrides):
    return train(params_for(data, task, **overrides), train_paths(layout))  # the train stage's own paths


def test_masks_are_binary_cover_their_range_and_replay_from_their_stream():
    first = degrade.masks(16, 32, 32, (0.1, 0.4), stream(1, Stream.DEGRADE, 5))
    again = degrade.masks(16, 32, 32, (0.1, 0.4), stream(1, Stream.DEGRADE, 5))
    other = degrade.masks(16, 32, 32, (0.1, 0.4), stream(1, Stream.DEGRADE, 6))
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert set(first.unique().tolist()) == {0.0, 1.0}
    coverage = first.mean(dim=(1, 2, 3))
    assert (coverage >= 0.1).all() and (coverage <= 0.9).all()  # the last shape may overshoot the draw


def test_downscale_with_every_degradation_is_deterministic():
    images = torch.rand(4, 3, 32, 32) * 2 - 1
    kwargs = {"blur": 1.5, "noise": 0.05, "jpeg_quality": 40}
    low = degrade.downscale(images, 4, stream(3, Stream.DEGRADE, 0), **kwargs)
    assert low.shape == (4, 3, 8, 8) and low.min() >= -1 and low.max() <= 1
    assert torch.equal(low, degrade.downscale(images, 4, stream(3, Stream.DEGRADE, 0), **kwargs))


@pytest.mark.parametrize("task,channels,scale", [("inpaint", 1, 1), ("superres", 3, 2), ("colorize", 3, 1)])
def test_networks_take_any_multiple_of_their_stride(task, channels, scale):
    spec = ArchSpec(
        arch="unet", latent_dim=0, image_size=16, channels=channels, g_width=4, d_width=4,
        task=task, scale=scale, depth=2, patch_depth=2,
    )  # fmt: skip
    G, D = build_generator(spec).eval(), build_discriminator(spec)
    inputs = {"inpaint": channels + 1, "superres": channels, "colorize": 1}[task]
    x = torch.rand(2, inputs, 12 // scale * scale, 20 // scale * scale) * 2 - 1
    if task == "superres":
        x = torch.rand(2, inputs, 12, 20) * 2 - 1  # the U-Net works at the input's size: multiples of 4
    if task == "inpaint":  # the model's input: the image with its hole zeroed, and a 0/1 mask (1 = hole)
        image = torch.rand(2, channels, 12, 20) * 2 - 1
        x = card("inpaint").image_to_image.encode(
            image, degrade.masks(2, 12, 20, (0.3, 0.5), stream(0, Stream.DEGRADE, 0))
        )
    out = G(x)
    assert out.shape == (2, channels, x.shape[2] * scale, x.shape[3] * scale)
    seen = {"inpaint": x, "superres": torch.nn.functional.interpolate(x, scale_factor=scale), "colorize": x}[
        task
    ]
    assert D(torch.cat([out, seen], 1)).ndim == 4  # a map of patch logits
    if task == "inpaint":  # known pixels pass through untouched
        known = (x[:, -1:] == 0).expand_as(out)
        assert known.any() and not known.all()  # both known pixels and a hole to fill
        assert torch.equal(out[known], image[known])
    if task == "colorize":  # the output keeps the input's luminance
        from ganops.colour import luminance

        inside = (out.abs() < 0.999).all(dim=1, keepdim=True)  # where nothing was clamped
        assert torch.allclose(luminance(out)[inside], x[inside], atol=1e-5)


def test_a_grey_source_is_refused_for_colorize_before_anything_runs(tiny_idx):
    with pytest.raises(ConfigError, match="task: colorize learns colour from colour images"):
        parse_params(tiny_params(tiny_idx, task="colorize"))


def test_a_size_the_unet_cannot_take_is_refused_with_the_fix(tiny_idx, projects):
    params = params_for(tiny_idx, "inpaint", restore={"depth": 5, "patch_depth": 2})
    task = build_task(params, torch.device("cpu"), stream(0, Stream.LATENT_NOISE))
    with pytest.raises(DataError, match="not a multiple of 32 .* set data.image_size"):
        task.arch_spec(np.zeros((1, 1, 16, 16), np.uint8), None)


@pytest.mark.parametrize("task", RESTORATIONS)
def test_each_task_trains_in_the_one_loop_and_resumes_bit_identically(tiny_idx, projects, tmp_path, task):
    layout = projects[task]
    straight = Layout(tmp_path / "straight")
    straight_paths = dict(prepared=layout.prepared, generator=straight.generator, checkpoints=straight.checkpoints,
                          samples=straight.samples, history=straight.train_history)  # fmt: skip
    train(params_for(tiny_idx, task, **{"train.max_steps": 8}), TrainPaths(**straight_paths))

    resumed = Layout(tmp_path / "resumed")
    resumed_paths = {**straight_paths, "generator": resumed.generator, "checkpoints": resumed.checkpoints,
                     "samples": resumed.samples, "history": resumed.train_history}  # fmt: skip
    train(params_for(tiny_idx, task, **{"train.max_steps": 4}), TrainPaths(**resumed_paths))
    result = train(params_for(tiny_idx, task, **{"train.max_steps": 8}), TrainPaths(**resumed_paths))
    assert result.resumed_from == 4

    a = torch.load(straight.generator, weights_only=True)
    b = torch.load(resumed.generator, weights_only=True)
    assert a["arch"]["task"] == task
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert sorted(p.name for p in resumed.samples.iterdir())  # input | G | original grids


def test_the_pixel_warmup_runs_before_d_and_resumes_inside_it_bit_identically(tiny_idx, projects, tmp_path):
    # 192 images of 32 = 6 steps, the first 3 (a half) on L1 alone: D neither runs nor learns.
    warm = {"train.epochs": None, "restore.images": 192, "restore.warmup": 0.5}
    layout = projects["inpaint"]

    def paths(name: str) -> TrainPaths:
        run = Layout(tmp_path / name)
        return TrainPaths(prepared=layout.prepared, generator=run.generator, checkpoints=run.checkpoints,
                          samples=run.samples, history=run.train_history)  # fmt: skip

    train(params_for(tiny_idx, "inpaint", **warm), paths("straight"))
    train(params_for(tiny_idx, "inpaint", **warm, **{"train.max_steps": 2}), paths("resumed"))  # stops in it
    assert train(params_for(tiny_idx, "inpaint", **warm), paths("resumed")).resumed_from == 2
    train(params_for(tiny_idx, "inpaint", **{**warm, "restore.warmup": 0.0}), paths("cold"))

    straight, resumed, cold = (torch.load(paths(n).generator, weights_only=True)["state_dict"]
                               for n in ("straight", "resumed", "cold"))  # fmt: skip
    assert all(torch.equal(straight[k], resumed[k]) for k in straight)
    assert not all(torch.equal(straight[k], cold[k]) for k in straight)
    with open(paths("straight").history) as f:
        rows = list(csv.DictReader(f))
    assert [math.isnan(float(row["loss_d"])) for row in rows] == [True] * 3 + [False] * 3
    assert all(math.isfinite(float(row["loss_g"])) for row in rows)


def test_the_evaluation_set_is_the_same_every_time_and_rebuilt_when_its_params_change(
    tiny_idx, projects, tmp_path
):
    layout = projects["inpaint"]
    params = params_for(tiny_idx, "inpaint")
    first = make_evalset(params, layout)
    inputs = (layout.evalset / "inputs.npz").read_bytes()
    assert make_evalset(params, layout) == first and (layout.evalset / "inputs.npz").read_bytes() == inputs
    assert first["count"] == 64 and first["sizes"] == {
        "smallest": [16, 16],
        "largest": [16, 16],
        "distinct": 1,
    }
    assert {x.shape for x in load_image_list(layout.evalset / "inputs.npz")} == {(2, 16, 16)}
    wider = make_evalset(params_for(tiny_idx, "inpaint", restore={"depth": 2, "patch_depth": 2,
                                                                  "eval_images": 64, "inpaint": {"coverage": [0.5, 0.6]}}),
                         layout)  # fmt: skip
    assert wider["inputs"]["sha256"] != first["inputs"]["sha256"]
    make_evalset(params, layout)  # leave the shared project as the other tests expect it


@pytest.mark.parametrize("task", RESTORATIONS)
def test_evaluate_scores_the_gan_beside_its_baseline(tiny_idx, projects, task):
    from ganops.stages.evaluate import run as evaluate
    from ganops.stages.evaluator import run as train_evaluator

    layout = projects[task]
    params = params_for(tiny_idx, task, **{"train.max_steps": 6})
    train_evaluator(params, layout)
    make_evalset(params, layout)
    run_training(tiny_idx, layout, task, **{"train.max_steps": 6})
    report = evaluate(params, layout)
    assert report == read_json(layout.metrics)
    metric = report["primary"]["metric"]
    baseline = report["baseline"]
    assert baseline["method"] == {"inpaint": "opencv_telea", "superres": "bicubic", "colorize": "grey"}[task]
    for key in (metric, "psnr_y", "ssim_y", "fid_domain"):
        assert np.isfinite(report[key]) and np.isfinite(baseline[key])
    assert report["evaluation"].startswith(f"{task}:")
    if task == "inpaint":
        assert report["by_coverage"] and all(b["count"] > 0 for b in report["by_coverage"].values())
        assert np.isfinite(report["psnr_hole"])
    if task == "colorize":
        assert (
            baseline["colourfulness"] == 0 < report["colourfulness_real"]
        )  # grey has no colour, the real images have
    G, spec = load_generator(layout.generator)
    assert spec.task == task


def test_feature_matching_trains_through_the_frozen_evaluator_and_joins_the_fingerprint(
    tiny_idx, projects, tmp_path
):
    """restore.feature_weight > 0: a "features" term through the domain evaluator (its weights fixed,
    G's gradient through it), the evaluator's bytes in the run's fingerprint; missing, the fix."""
    from ganops.files import sha256_file
    from ganops.stages.evaluator import run as train_evaluator

    layout = projects["superres"]
    matched = params_for(tiny_idx, "superres", **{"train.max_steps": 4, "restore.feature_weight": 1.0})
    train_evaluator(matched, layout)
    task = build_task(matched, torch.device("cpu"), stream(0, Stream.LATENT_NOISE), layout.evaluator)
    assert task.shaping == {"evaluator_sha256": sha256_file(layout.evaluator)}
    fake = torch.zeros(2, 1, 16, 16, requires_grad=True)
    terms = task.g_terms(fake, torch.rand(2, 1, 16, 16) * 2 - 1)
    terms["features"].backward()
    assert set(terms) == {"l1", "features"} and fake.grad.abs().sum() > 0

    runs = {}
    for name, params in (
        ("matched", matched),
        ("plain", params_for(tiny_idx, "superres", **{"train.max_steps": 4})),
    ):
        run = Layout(tmp_path / name)
        paths = TrainPaths(prepared=layout.prepared, evaluator=layout.evaluator, generator=run.generator,
                           checkpoints=run.checkpoints, samples=run.samples, history=run.train_history)  # fmt: skip
        runs[name] = (train(params, paths), torch.load(run.generator, weights_only=True)["state_dict"])
    (matched_run, a), (plain_run, b) = runs["matched"], runs["plain"]
    assert matched_run.fingerprint != plain_run.fingerprint
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the term changed what G learned

    with pytest.raises(ConfigError, match=r"restore.feature_weight: .*`dvc repro evaluator`"):
        build_task(matched, torch.device("cpu"), stream(0, Stream.LATENT_NOISE), tmp_path / "none.pt")
