"""Which evaluator a dataset gets: the gate for supervised classifiers, the label-free evaluator, the fallback."""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest
import torch
from scipy.stats import binom

from ganops.config import parse_params
from ganops.data.prepared import PreparedSplit, fit_to_size, to_unit_range, write_prepared
from ganops.errors import DataError, TrainingError
from ganops.metrics.evaluator import load_evaluator
from ganops.metrics.evaluator_gate import binomial_tail, chance_level, judge
from ganops.metrics.features import DomainFeaturesAndLogits, extract
from ganops.metrics.fid import fid
from ganops.metrics.selfsup import augment, nt_xent, train_self_supervised
from ganops.stages import Layout
from ganops.stages.evaluate import run as evaluate
from ganops.stages.evaluator import run as evaluator_stage
from ganops.stages.train import train_paths
from ganops.training.loop import train

from conftest import fabricate_images, tiny_params

CPU = torch.device("cpu")


def split(n: int, seed: int, labelled: bool = True) -> PreparedSplit:
    images, labels = fabricate_images(n, np.random.default_rng(seed))
    return PreparedSplit(fit_to_size(images[:, None], 16), labels.astype(np.int64) if labelled else None)


def prepared(root, train: PreparedSplit, test: PreparedSplit) -> Layout:
    layout = Layout(root)
    layout.prepared.mkdir(parents=True)
    write_prepared(layout.prepared, {"train": train, "test": test}, {"source": "test", "image_size": 16})
    return layout


def evaluator_params(**overrides):
    return parse_params(tiny_params("unused", **{f"evaluator.{k}": v for k, v in overrides.items()}))


# The gate ----------------------------------------------------------------------------------------


def test_binomial_tail_matches_scipy():
    for k, n, p in [(5, 10, 0.5), (40, 100, 0.25), (590, 1000, 0.11), (0, 5, 0.3), (30, 30, 0.9)]:
        assert math.isclose(binomial_tail(k, n, p), binom.sf(k - 1, n, p), rel_tol=1e-9, abs_tol=1e-300)


def test_chance_is_the_majority_share():
    assert chance_level(np.array([0, 0, 0, 1])) == 0.75
    assert chance_level(np.repeat(np.arange(10), 7)) == pytest.approx(0.1)


def test_gate_passes_real_categories_far_from_an_absolute_bar():
    labels = np.repeat(np.arange(9), 100)  # the icons: 9 categories, 0.59 test accuracy
    verdict = judge(0.59, labels, min_skill=0.25)
    assert verdict.usable and verdict.skill == pytest.approx((0.59 - 1 / 9) / (1 - 1 / 9))


def test_gate_rejects_near_chance_imbalance_and_luck_on_tiny_test_sets():
    three = np.repeat(np.arange(3), 10)
    assert not judge(0.37, three, 0.25).usable  # the shapes: barely above 1/3
    imbalanced = np.array([0] * 95 + [1] * 5)
    assert not judge(0.95, imbalanced, 0.25).usable  # always guessing class 0 scores 0.95
    tiny = np.array([0, 0, 1, 1, 2, 2])
    lucky = judge(4 / 6, tiny, 0.25)  # skill 0.5, but 4 of 6 happens by chance 10% of the time
    assert lucky.skill > 0.25 and lucky.p_value > 1e-3 and not lucky.usable
    assert judge(0.9, np.repeat(np.arange(3), 100), 0.25).usable


# The label-free evaluator ------------------------------------------------------------------------


def test_nt_xent_is_low_when_views_match_and_high_when_they_do_not():
    z = torch.randn(16, 8)
    assert nt_xent(z, z).item() < nt_xent(z, torch.randn(16, 8)).item() - 1


def test_views_change_geometry_and_intensity_but_stay_in_range():
    x = to_unit_range(torch.from_numpy(split(8, 0).images))
    view = augment(x, torch.Generator().manual_seed(0))
    assert view.shape == x.shape and view.min() >= -1 and view.max() <= 1
    assert not torch.allclose(view, x)


def rectangles(n: int, seed: int) -> PreparedSplit:
    """A bright rectangle of random size and place on a dark noisy background, no labels: views of
    one image share its rectangle, other images differ (the fabricated bars of conftest come in only
    10 places, too few for views to tell images apart)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 40, (n, 1, 16, 16))
    for image in images:
        h, w = rng.integers(3, 9, 2)
        y, x = rng.integers(0, 16 - h), rng.integers(0, 16 - w)
        image[0, y : y + h, x : x + w] = rng.integers(150, 256)
    return PreparedSplit(images.astype(np.uint8), None)


# Rotation needs images whose turns differ (bars, not rectangles); contrastive needs variety.
DATA = {"rotation": lambda n, seed: split(n, seed, False), "contrastive": rectangles}


@pytest.fixture(scope="module", params=list(DATA))
def label_free(request):
    params = evaluator_params(min_steps=150, self_supervised=request.param).evaluator
    data = DATA[request.param]
    return train_self_supervised(params, data(512, 1), data(256, 2), seed=0, device=CPU), data


def test_self_supervised_training_learns_its_task_without_labels(label_free):
    (model, check), _ = label_free
    assert model.head is None and model.num_classes == 0
    name = "test_view_match" if check["method"] == "contrastive" else "test_rotation_accuracy"
    floor = 10 if check["method"] == "contrastive" else 2  # x chance: 1/256 for views, 1/4 for turns
    assert check[name] > floor * check[f"{name}_chance"]


def test_label_free_fid_rises_with_noise(label_free):
    (model, _), data = label_free
    net = DomainFeaturesAndLogits(model)
    reference = extract(net, to_unit_range(torch.from_numpy(data(512, 3).images)).split(128), "cpu")
    assert reference.logits is None  # no class head: no class logits
    clean = to_unit_range(torch.from_numpy(data(512, 4).images))
    noise = torch.Generator().manual_seed(0)
    noisy = lambda s: (clean + 2 * s * torch.randn(clean.shape, generator=noise)).clamp(-1, 1)  # noqa: E731
    fids = [
        fid(reference.features, extract(net, noisy(s).split(128), "cpu").features) for s in (0, 0.1, 0.2, 0.4)
    ]
    assert all(a < b for a, b in zip(fids, fids[1:], strict=False)), fids


# The stage: which evaluator, and why -------------------------------------------------------------


def test_unlabelled_data_gets_the_label_free_evaluator(tmp_path):
    layout = prepared(tmp_path, split(256, 1, False), split(64, 2, False))
    report = evaluator_stage(evaluator_params(min_steps=20), layout)
    assert report["objective"] == "self_supervised" and report["reason"] == "the prepared data has no labels"
    assert load_evaluator(layout.evaluator).head is None
    with pytest.raises(DataError, match="no labels.*evaluator.objective"):
        evaluator_stage(evaluator_params(objective="supervised"), layout)


def test_labels_that_cannot_be_learned_fall_back_with_a_notice(tmp_path, caplog):
    train_split, test_split = split(512, 1), split(256, 2)
    rng = np.random.default_rng(0)  # labels unrelated to the images: no classifier beats chance
    shuffled = lambda s: PreparedSplit(s.images, rng.permutation(s.labels))  # noqa: E731
    layout = prepared(tmp_path, shuffled(train_split), shuffled(test_split))
    with caplog.at_level(logging.WARNING, logger="ganops.stages.evaluator"):
        report = evaluator_stage(evaluator_params(min_steps=20), layout)
    assert report["objective"] == "self_supervised" and not report["gate"]["usable"]
    assert "did not give a usable classifier" in report["reason"]
    notices = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(notices) == 1 and "label-free evaluator instead" in notices[0]
    layout.evaluator.unlink()
    with pytest.raises(TrainingError, match="not usable.*evaluator.objective to auto"):
        evaluator_stage(evaluator_params(objective="supervised", min_steps=20), layout)
    assert not layout.evaluator.exists()


def test_learnable_labels_keep_the_supervised_evaluator(tmp_path):
    layout = prepared(tmp_path, split(512, 1), split(256, 2))
    report = evaluator_stage(evaluator_params(), layout)
    assert report["objective"] == "supervised" and report["gate"]["usable"]
    assert report["test_accuracy"] == report["gate"]["accuracy"] > 0.9


def test_min_steps_trains_small_sets_longer(tmp_path):
    layout = prepared(tmp_path, split(96, 1), split(300, 2))  # 3 steps per epoch at batch 32
    short = evaluator_stage(evaluator_params(epochs=1, min_steps=0), layout)
    long = evaluator_stage(evaluator_params(epochs=1, min_steps=150), layout)
    assert short["gate"]["accuracy"] < long["gate"]["accuracy"]
    assert long["objective"] == "supervised"


def test_evaluate_and_live_fid_run_on_a_label_free_evaluator_of_labelled_data(tiny_idx, tmp_path):
    from ganops.stages.prepare import run as prepare

    params = parse_params(
        tiny_params(
            tiny_idx,
            **{"evaluator.objective": "self_supervised", "train.max_steps": 4, "train.eval_every": 2},
        )
    )
    layout = Layout(tmp_path)
    prepare(params, layout)
    assert evaluator_stage(params, layout)["reason"] == "evaluator.objective is self_supervised"
    train(params, train_paths(layout))
    metrics = evaluate(params, layout)
    assert metrics["fid_domain"] > 0 and "class_coverage" not in metrics and "is_domain" not in metrics
    assert any("trained without labels" in note for note in metrics["notes"])
