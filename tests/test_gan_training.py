"""The training loop with every option: resume stays bit-identical, live FID, collapse, divergence."""

import contextlib
import csv
import logging

import pytest
import torch

from ganops.config import parse_params
from ganops.errors import TrainingError
from ganops.losses import LOSSES, AdversarialLoss
from ganops.models.io import load_generator
from ganops.stages import Layout
from ganops.stages.evaluator import run as train_evaluator
from ganops.stages.prepare import run as prepare
from ganops.stages.train import train_paths
from ganops.training import loop
from ganops.training.loop import train
from ganops.training.state import LiveRow

from conftest import tiny_params

EVERYTHING = {
    "model.conditional": True,
    "model.spectral_norm": True,
    "model.d_dropout": 0.2,
    "train.loss": "wgan_gp",
    "train.n_critic": 2,
    "train.r1_gamma": 1.0,
    "train.r2_gamma": 1.0,
    "train.lr_g": 1e-4,
    "train.lr_d": 4e-4,
    "train.augment": ["hflip", "color", "translation", "cutout"],
}


@pytest.fixture(scope="module")
def project(tiny_idx, tmp_path_factory):
    """Prepared tiny data and a trained evaluator, shared by the tests (read-only)."""
    root = tmp_path_factory.mktemp("project")
    params = parse_params(tiny_params(tiny_idx))
    prepare(params, Layout(root))
    train_evaluator(params, Layout(root))
    return root


def run_training(project, root, **overrides):
    shared, layout = Layout(project), Layout(root)
    params = parse_params(tiny_params(shared.prepared, **{"train.checkpoint_every": 2, **overrides}))
    return train(params, train_paths(layout, shared, feature_cache=root / "cache")), layout


def test_resume_with_every_random_option_is_bit_identical(project, tmp_path):
    _, straight = run_training(project, tmp_path / "straight", **EVERYTHING, **{"train.max_steps": 6})
    _, layout = run_training(project, tmp_path / "resumed", **EVERYTHING, **{"train.max_steps": 4})
    result, layout = run_training(project, tmp_path / "resumed", **EVERYTHING, **{"train.max_steps": 6})
    assert result.resumed_from == 4
    expected = torch.load(straight.generator, weights_only=True)["state_dict"]
    got = torch.load(layout.generator, weights_only=True)["state_dict"]
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert straight.train_history.read_text() == layout.train_history.read_text()
    G, spec = load_generator(layout.generator)
    assert (
        spec.num_classes == 10
        and spec.spectral_norm
        and G(torch.randn(3, spec.latent_dim)).shape == (3, 1, 16, 16)
    )


def test_live_fid_is_logged_and_the_best_step_is_kept(project, tmp_path):
    result, layout = run_training(
        project, tmp_path, **{"train.max_steps": 8, "train.eval_every": 4, "train.eval_samples": 64}
    )
    with open(layout.train_history.parent / "live.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["step"] for r in rows] == ["4", "8"]
    assert all(float(r["fid_live"]) > 0 and 0 <= float(r["class_coverage"]) <= 1 for r in rows)
    best = min(rows, key=lambda r: float(r["fid_live"]))
    assert result.best_step == int(best["step"]) and result.best_fid_live == pytest.approx(
        float(best["fid_live"])
    )
    saved = torch.load(next(layout.checkpoints.glob("*/best.pt")), weights_only=True)
    assert saved["step"] == result.best_step
    assert len(list((tmp_path / "cache").glob("*.pt"))) == 1  # real features cached once


def test_collapse_warns_and_training_goes_on(project, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="ganops.training.loop"):
        result, _ = run_training(
            project,
            tmp_path,
            **{
                "train.max_steps": 4,
                "train.eval_every": 4,
                "train.eval_samples": 64,
                "train.collapse_coverage": 1.0,
            },
        )
    if result.last_class_coverage < 1.0:
        assert "mode collapse at step 4" in caplog.text
    else:  # every class covered: nothing to warn about
        assert "mode collapse" not in caplog.text


class _State:
    """Stands in for TrainState: counts the checkpoints taken of it."""

    def __init__(self):
        self.saved = 0

    def state_dict(self):
        self.saved += 1
        return {"step": 12}


def test_check_collapse_stops_with_a_checkpoint_when_asked(tmp_path):
    params = parse_params(tiny_params("x", **{"train.stop_on_collapse": True}))
    state = _State()
    collapsed = LiveRow(step=12, fid_live=80.0, class_coverage=0.2, class_kl=1.5)
    with pytest.raises(TrainingError, match=r"mode collapse at step 12: only 20% of the classes.*stopped"):
        loop._check_collapse(collapsed, params.train, tmp_path, state)
    assert state.saved == 1 and (tmp_path / "step_00000012.pt").exists()
    covered = LiveRow(step=12, fid_live=80.0, class_coverage=0.9, class_kl=0.1)
    loop._check_collapse(covered, params.train, tmp_path, state)  # no stop, no checkpoint
    assert state.saved == 1


class _Diverging:
    """A loss registry whose D loss turns NaN on its 3rd call."""

    def __init__(self):
        self.calls = 0
        base = LOSSES.get("non_saturating")

        def d(real, fake, smoothing=0.0):
            self.calls += 1
            value = base.d(real, fake, smoothing)
            return value * float("nan") if self.calls >= 3 else value

        self.loss = AdversarialLoss(d=d, g=base.g)

    def get(self, name):
        return self.loss


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(project, tmp_path, monkeypatch):
    monkeypatch.setattr(loop, "LOSSES", _Diverging())
    with pytest.raises(TrainingError, match=r"at step 3; the last good checkpoint is kept.*Lower train.lr"):
        run_training(project, tmp_path, **{"train.max_steps": 10})
    layout = Layout(tmp_path)
    assert [p.name for p in layout.checkpoints.glob("*/step_*.pt")] == ["step_00000002.pt"]
    assert not layout.generator.exists()


def test_freezing_d_in_the_g_step_changes_no_bit(project, tmp_path, monkeypatch):
    options = {**EVERYTHING, "train.max_steps": 4}
    _, frozen = run_training(project, tmp_path / "frozen", **options)
    monkeypatch.setattr(loop.fast, "frozen", lambda module, enabled=True: contextlib.nullcontext())
    _, plain = run_training(project, tmp_path / "plain", **options)
    assert frozen.generator.read_bytes() == plain.generator.read_bytes()
    assert frozen.train_history.read_text() == plain.train_history.read_text()
