import csv

import pytest
import torch

from ganops.config import parse_params
from ganops.errors import TrainingError
from ganops.models.io import load_generator
from ganops.stages import Layout
from ganops.stages.prepare import run as prepare
from ganops.training import checkpoint
from ganops.training.ema import EMA
from ganops.training.loop import TrainPaths, fingerprint, train
from ganops.training.schedule import lr_factor
from ganops.training.state import HistoryRow, LiveRow, from_tensor, to_tensor

from conftest import tiny_params


@pytest.fixture(scope="module")
def prepared(tiny_idx, tmp_path_factory):
    root = tmp_path_factory.mktemp("prepared")
    prepare(parse_params(tiny_params(tiny_idx)), Layout(root))
    return Layout(root).prepared


def run_training(prepared, root, **overrides):
    layout = Layout(root)
    paths = TrainPaths(
        prepared=prepared,
        generator=layout.generator,
        checkpoints=layout.checkpoints,
        samples=layout.samples,
        history=layout.train_history,
    )
    params = parse_params(tiny_params(prepared, **{"train.checkpoint_every": 4, **overrides}))
    return train(params, paths), layout


def run_dir(layout, result):
    return checkpoint.run_folder(layout.checkpoints, result.fingerprint)


def weights(path):
    return torch.load(path, weights_only=True)["state_dict"]


def test_resume_after_interruption_is_bit_identical(prepared, tmp_path):
    _, straight = run_training(prepared, tmp_path / "straight", **{"train.max_steps": 10})

    # Interrupted: stop at step 6, lose the step-6 checkpoint (as if killed between 4 and 6), resume.
    first, layout = run_training(prepared, tmp_path / "resumed", **{"train.max_steps": 6})
    (run_dir(layout, first) / "step_00000006.pt").unlink()
    result, layout = run_training(prepared, tmp_path / "resumed", **{"train.max_steps": 10})

    assert result.resumed_from == 4
    expected, got = weights(straight.generator), weights(layout.generator)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert straight.train_history.read_text() == layout.train_history.read_text()


def test_other_settings_train_beside_the_run_and_never_cost_it_its_resume(prepared, tmp_path):
    main, layout = run_training(prepared, tmp_path, **{"train.max_steps": 4})
    other, _ = run_training(prepared, tmp_path, **{"train.max_steps": 8, "train.lr": 1e-3})
    assert other.resumed_from == 0 and other.fingerprint != main.fingerprint
    assert run_dir(layout, main).is_dir() and run_dir(layout, other).is_dir()  # side by side
    again, _ = run_training(prepared, tmp_path, **{"train.max_steps": 8})
    assert again.resumed_from == 4 and again.fingerprint == main.fingerprint


def test_the_fingerprint_covers_code_and_library_versions(prepared):
    params = parse_params(tiny_params(prepared))
    digest, material = fingerprint(params, "data-sha", 100)
    assert len(material["code_sha256"]) == 64
    assert material["libraries"]["torch"] == torch.__version__.split("+")[0]
    assert fingerprint(params, "data-sha", 100)[0] == digest  # stable in one process
    assert fingerprint(params, "other-data", 100)[0] != digest
    assert fingerprint(params, "data-sha", 200)[0] == digest  # constant rates: a longer run resumes


def test_a_schedule_over_the_run_makes_its_length_part_of_the_fingerprint(prepared, tmp_path):
    decaying = parse_params(tiny_params(prepared, **{"train.lr_schedule": "linear"}))
    assert fingerprint(decaying, "data-sha", 100)[0] != fingerprint(decaying, "data-sha", 200)[0]
    short, layout = run_training(prepared, tmp_path, **{"train.max_steps": 4, "train.lr_schedule": "cosine"})
    longer, _ = run_training(prepared, tmp_path, **{"train.max_steps": 8, "train.lr_schedule": "cosine"})
    assert longer.resumed_from == 0 and longer.fingerprint != short.fingerprint
    again, _ = run_training(prepared, tmp_path, **{"train.max_steps": 8, "train.lr_schedule": "cosine"})
    assert again.resumed_from == 8 and again.fingerprint == longer.fingerprint


@pytest.mark.parametrize(
    ("schedule", "factors"),
    [("constant", [1, 1, 1, 1]), ("linear", [1, 0.75, 0.5, 0.25]), ("cosine", [1, 0.8536, 0.5, 0.1464])],
)
def test_lr_schedules_decay_from_the_base_rate_towards_zero(schedule, factors):
    assert [round(lr_factor(schedule, step, 4), 4) for step in range(4)] == factors


def test_a_failed_run_leaves_the_last_runs_outputs_alone(prepared, tmp_path):
    done, layout = run_training(prepared, tmp_path)
    before = {p: p.read_bytes() for p in (layout.generator, layout.train_history, *layout.samples.iterdir())}
    with pytest.raises(TrainingError, match="loss became"):
        run_training(prepared, tmp_path, **{"train.lr": 1e30, "train.max_steps": 20})
    assert {p: p.read_bytes() for p in before} == before
    assert sorted(layout.samples.iterdir()) == sorted(p for p in before if p.parent == layout.samples)
    assert (run_dir(layout, done) / "step_00000032.pt").exists()  # its resume point is kept too


def test_runs_are_pruned_to_the_most_recent_ones(prepared, tmp_path):
    results = [
        run_training(prepared, tmp_path, **{"train.max_steps": 4, "train.lr": lr})
        for lr in (1e-4, 2e-4, 3e-4, 4e-4)
    ]
    layout = results[-1][1]
    kept = sorted(p.name for p in layout.checkpoints.iterdir())
    assert len(kept) == checkpoint.KEEP_RUNS
    assert run_dir(layout, results[-1][0]).name in kept and run_dir(layout, results[0][0]).name not in kept


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
    assert len(list(run_dir(layout, result).glob("step_*.pt"))) == checkpoint.KEEP_STEPS


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


def test_the_budget_is_images_seen_so_a_small_set_trains_as_many_steps():
    from ganops.training.loop import _grid_every, _total_steps

    budget = parse_params({"train": {"images": 120_000, "batch_size": 16}}).train
    images = (budget.images, "train.images")
    assert _total_steps(budget, per_epoch=60_000 // 16, n_images=60_000, budget=images) == 7_500
    assert (
        _total_steps(budget, per_epoch=1_715 // 16, n_images=1_715, budget=images) == 7_500
    )  # 70 passes of icons
    by_epochs = parse_params({"train": {"epochs": 2, "batch_size": 16}}).train  # epochs wins
    assert _total_steps(by_epochs, per_epoch=100, n_images=1_600, budget=(None, "train.images")) == 200
    # One sample grid per epoch while they are few; at most about 20 for a small set's many epochs.
    assert _grid_every(batches=2 * 3_750, per_epoch=3_750) == 1
    assert _grid_every(batches=7_500, per_epoch=107) == 4
    with pytest.raises(Exception, match="set train.images"):
        parse_params({"train": {"images": None, "epochs": None}})


def test_history_and_live_rows_survive_a_checkpoint_exactly():
    history = [
        HistoryRow(
            step=3, epoch=1, loss_d=1.3862943649291992, loss_g=0.6931471824645996, d_real=0.5, d_fake=0.1
        )
    ]
    live = [LiveRow(step=4, fid_live=28.152415567967527, class_coverage=float("nan"), class_kl=float("nan"))]
    for rows, kind in ((history, HistoryRow), (live, LiveRow)):
        stored = to_tensor(rows, kind)
        assert stored.dtype == torch.float64 and stored.shape == (1, len(kind._fields))
        back = from_tensor(stored, kind)
        assert repr(back) == repr(rows)  # same values (NaN included) and int fields ints again
    assert to_tensor([], LiveRow).shape == (0, len(LiveRow._fields))  # live FID off: still a table
