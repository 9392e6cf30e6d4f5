import csv

import pytest
import torch

from ganops.config import parse_params
from ganops.stages import Layout
from ganops.stages.prepare import run as prepare
from ganops.training.ema import EMA
from ganops.training.loop import TrainPaths, load_generator, train

from conftest import tiny_params


@pytest.fixture(scope="module")
def prepared(tiny_idx, tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    prepare(parse_params(tiny_params(tiny_idx)), Layout(root))
    return Layout(root).prepared


def run_training(prepared, root, **overrides):
    layout = Layout(root)
    paths = TrainPaths(prepared, layout.generator, layout.checkpoints, layout.samples, layout.train_history)
    params = parse_params(tiny_params(prepared, **{"train.checkpoint_every": 4, **overrides}))
    return train(params, paths), layout


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_resume_after_interruption_is_bit_identical(prepared, tmp_path):
    _, straight = run_training(prepared, tmp_path / "straight", **{"train.max_steps": 10})

    # Interrupted: stop at step 6, lose the step-6 checkpoint (as if killed between 4 and 6), resume.
    _, layout = run_training(prepared, tmp_path / "resumed", **{"train.max_steps": 6})
    (layout.checkpoints / "step_00000006.pt").unlink()
    result, layout = run_training(prepared, tmp_path / "resumed", **{"train.max_steps": 10})

    assert result.resumed_from == 4
    expected, got = weights(straight.generator), weights(layout.generator)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert straight.train_history.read_text() == layout.train_history.read_text()


def test_changed_settings_start_afresh(prepared, tmp_path):
    run_training(prepared, tmp_path, **{"train.max_steps": 4})
    result, _ = run_training(prepared, tmp_path, **{"train.max_steps": 8, "train.lr": 1e-3})
    assert result.resumed_from == 0


def test_outputs_loss_history_grids_and_a_rebuildable_generator(prepared, tmp_path):
    result, layout = run_training(prepared, tmp_path)
    steps_per_epoch = 512 // 32
    assert result.steps == 2 * steps_per_epoch
    with open(layout.train_history) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == result.steps and rows[-1]["step"] == str(result.steps)
    assert {"loss_d", "loss_g", "d_real", "d_fake"} <= rows[0].keys()
    assert sorted(p.name for p in layout.samples.iterdir()) == ["epoch_001.png", "epoch_002.png"]
    G, spec = load_generator(layout.generator)
    assert spec.image_size == 16 and G(torch.randn(2, spec.latent_dim)).shape == (2, 1, 16, 16)
    assert len(list(layout.checkpoints.glob("step_*.pt"))) == 2  # only the newest are kept


def test_ema_with_zero_decay_equals_the_weights():
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    ema = EMA(model, decay=0.0)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    model(torch.randn(8, 4))  # moves the BN running stats
    ema.update(model, step=100)
    for a, b in zip(ema.shadow.state_dict().values(), model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
