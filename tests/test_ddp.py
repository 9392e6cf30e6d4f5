"""Data-parallel training: the train stage launching 2 CPU workers (gloo), against one process with
the same global batch; by hand under torchrun; killed workers; every random draw per image."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch

from ganops.config import parse_params
from ganops.runtime import Draws
from ganops.stages import Layout
from ganops.stages.evaluator import run as train_evaluator
from ganops.stages.prepare import run as prepare
from ganops.training.augment import diff_augment, hflip

from conftest import tiny_params, write_params

REPO = Path(__file__).resolve().parents[1]
STEPS = 12
BASE = {"train.max_steps": STEPS, "train.checkpoint_every": 5}
# What the comparisons below train: augmentation and penalties whose draws are per image.
GENERATE = {
    "train.loss": "wgan_gp",
    "train.augment": ["hflip", "color", "translation", "cutout"],
    "train.eval_every": 6,  # live FID: rank 0 alone measures, while the others wait
}
INPAINT = {"task": "inpaint", "train.r1_gamma": 1.0, "train.r2_gamma": 1.0}
DROPOUT = {"model.d_dropout": 0.3}  # each rank draws its own masks (training.loop._dropout_seed)


@pytest.fixture(scope="module")
def project(tiny_idx, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp-prepared")
    params = tiny_params(tiny_idx, **BASE)
    write_params(root / "params.yaml", params)
    prepare(parse_params(params), Layout(root))
    train_evaluator(parse_params(params), Layout(root))  # for live FID
    return root


def _copy(project: Path, dest: Path, **overrides) -> Path:
    """The prepared data, and its params with ``overrides`` (dotted keys)."""
    shutil.copytree(project / "data", dest / "data")
    shutil.copytree(project / "models", dest / "models")
    params = _params(project)
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        if key:
            params[section][key] = value
        else:
            params[section] = value
    write_params(dest / "params.yaml", params)
    return dest


def _params(root: Path) -> dict:
    import yaml

    return yaml.safe_load((root / "params.yaml").read_text())


def _env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}


def _train(root: Path, *launcher: str) -> subprocess.CompletedProcess:
    """The train stage as DVC runs it, or under a launcher given by hand (torchrun)."""
    command = [*launcher, "-m", "ganops", "train"] if launcher else [sys.executable, "-m", "ganops", "train"]
    return subprocess.run(command, cwd=root, env=_env(), capture_output=True, text=True, timeout=600)


def _losses(root: Path) -> list[dict]:
    with open(root / "reports" / "train" / "losses.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def runs(project, tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """Each setting trained by 2 processes (the stage launching them) and by one."""
    done = {}
    for name, overrides in (("generate", GENERATE), ("inpaint", INPAINT)):
        for processes in (2, 1):
            folder = tmp_path_factory.mktemp(f"{name}-{processes}")
            root = _copy(project, folder, **overrides, **{"train.processes": processes})
            result = _train(root)
            assert result.returncode == 0, result.stderr[-3000:]
            done[f"{name}-{processes}"] = (root, result)
    return done


@pytest.fixture(scope="module")
def dropout_run(project, tmp_path_factory) -> Path:
    """Dropout in D, trained by 2 processes (the stage launching them)."""
    root = _copy(project, tmp_path_factory.mktemp("dropout-2"), **DROPOUT, **{"train.processes": 2})
    result = _train(root)
    assert result.returncode == 0, result.stderr[-3000:]
    return root


def _differences(a, b, where: str = "") -> list[str]:
    """Where two saved states (nested dicts and lists of tensors and values) differ, bit for bit."""
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        same = a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
        if not same and a.is_floating_point() and a.dtype == b.dtype and a.shape == b.shape:
            same = torch.equal(a.isnan(), b.isnan()) and torch.equal(a.nan_to_num(0), b.nan_to_num(0))
        return [] if same else [where]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where} (keys {sorted(a)} vs {sorted(b)})"]
        return [d for key in a for d in _differences(a[key], b[key], f"{where}/{key}")]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple) and len(a) == len(b):
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{where}/{i}")
        ]
    return [] if a == b else [f"{where} ({a!r} vs {b!r})"]


def _load(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def test_the_stage_launches_two_workers_and_rank_zero_writes_once(runs):
    root, result = runs["generate-2"]
    assert "train: launching 2 processes on this node" in result.stderr
    assert "distributed: 2 processes (gloo), global batch 32, 16 per rank" in result.stderr
    assert result.stderr.count("trained 12 steps") == 1  # only rank 0 writes the report and says so
    assert [int(r["step"]) for r in _losses(root)] == list(range(1, STEPS + 1))
    with open(root / "reports" / "train" / "live.csv") as f:
        assert [int(r["step"]) for r in csv.DictReader(f)] == [6, 12]
    assert sorted(p.name for p in (root / "models" / "checkpoints").glob("*/step_*.pt")) == [
        "step_00000010.pt",
        "step_00000012.pt",
    ]
    assert (root / "models" / "generator.pt").is_file()
    assert [p.name for p in (root / "reports" / "samples").iterdir()] == ["epoch_001.png"]
    log = json.loads((root / "logs" / "train.json").read_text())
    assert log["processes"] == 2 and log["threads"] == 1  # cpu.threads 2, shared by the 2 workers
    report = json.loads((root / "reports" / "train.json").read_text())
    single = json.loads((runs["generate-1"][0] / "reports" / "train.json").read_text())
    assert report["fingerprint"] != single["fingerprint"]  # other bits: never resumed as one


@pytest.mark.parametrize("name", ["generate", "inpaint"])
def test_two_processes_follow_one_process_with_the_same_global_batch(runs, name):
    """WGAN-GP with every augmentation, and inpainting with R1 and R2: the same data, latents, masks and
    per-image draws, DDP averaging the gradients; only BatchNorm's statistics are per rank (16
    images instead of 32), so the curves agree closely but not bit for bit."""
    two, one = _losses(runs[f"{name}-2"][0]), _losses(runs[f"{name}-1"][0])
    assert len(two) == len(one) == STEPS
    for key in ("loss_d", "loss_g"):
        scale = max(1.0, max(abs(float(row[key])) for row in one))
        diffs = [abs(float(a[key]) - float(b[key])) / scale for a, b in zip(two, one, strict=True)]
        assert max(diffs) < 0.06, (key, diffs)  # measured: at most 0.031


def test_ranks_draw_their_own_rows_of_the_global_batch():
    """Rank r's draws are rows r of one process's draws for the global batch: no two ranks repeat
    an augmentation, and the global batch is augmented as one process would augment it."""
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    policy = ["color", "translation", "cutout"]

    def seeded() -> torch.Generator:
        return torch.Generator().manual_seed(5)

    whole = diff_augment(hflip(x, Draws(seeded())), policy, Draws(seeded()))
    ranks = [
        diff_augment(hflip(x[4 * r : 4 * r + 4], Draws(seeded(), r, 2)), policy, Draws(seeded(), r, 2))
        for r in (0, 1)
    ]
    assert torch.equal(torch.cat(ranks), whole)
    same = x[:4]  # the same images on both ranks get other draws
    assert not torch.equal(
        diff_augment(same, policy, Draws(seeded(), 0, 2)), diff_augment(same, policy, Draws(seeded(), 1, 2))
    )


def test_each_rank_draws_its_own_dropout_masks():
    """D's dropout draws from torch's global stream, which each step seeds per rank: two ranks drop
    other units of the same input, a replayed step (a resume) drops the same ones, and rank 0 drops
    what one process would."""
    from ganops.models import ArchSpec, build_discriminator
    from ganops.training.loop import _dropout_seed

    spec = ArchSpec(
        arch="dcgan", latent_dim=8, image_size=16, channels=1, g_width=8, d_width=8, d_dropout=0.5
    )
    D = build_discriminator(spec).train()
    x = torch.rand(4, 1, 16, 16) * 2 - 1

    def logits(step: int, rank: int) -> torch.Tensor:
        torch.manual_seed(_dropout_seed(7, step, rank))
        with torch.no_grad():
            return D(x)

    assert torch.equal(logits(3, 1), logits(3, 1))
    assert not torch.equal(logits(3, 0), logits(3, 1))
    assert not torch.equal(logits(3, 1), logits(4, 1))
    assert _dropout_seed(7, 3, 0) == _dropout_seed(7, 3, 0) != _dropout_seed(7, 3, 1)


def test_a_killed_worker_fails_the_stage_and_the_next_run_resumes(project, tmp_path):
    long_run = {
        "train.processes": 2,
        "train.max_steps": 2000,
        "train.epochs": 200,
        "train.checkpoint_every": 10,
    }
    root = _copy(project, tmp_path / "killed", **GENERATE, **long_run)
    stage = subprocess.Popen(
        [sys.executable, "-m", "ganops", "train"], cwd=root, env=_env(), stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not list((root / "models" / "checkpoints").glob("*/step_*.pt")):
        assert stage.poll() is None, stage.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.02)
    (rank_one,) = [
        p for p in psutil.Process(stage.pid).children(recursive=True) if p.environ().get("RANK") == "1"
    ]
    rank_one.kill()
    _, stderr = stage.communicate(timeout=120)
    assert stage.returncode != 0
    assert "error: train: worker rank 1 of 2 failed: killed by SIGKILL" in stderr
    assert not (root / "models" / "generator.pt").exists()  # outputs are published only at the end
    kept = max(int(p.stem.split("_")[1]) for p in (root / "models" / "checkpoints").glob("*/step_*.pt"))

    params = _params(root)
    params["train"] |= {"max_steps": kept + 5, "processes": 1}  # the rest of the run, kept short
    write_params(root / "params.yaml", params)
    other = _train(root)  # one process cannot continue what two began: refused, with the way out
    assert other.returncode != 0
    assert (
        f"holds this run's checkpoints up to step {kept} of {kept + 5}, trained by 2 process(es)"
        in other.stderr
    )
    assert "Set train.processes=2 to resume it" in other.stderr

    params["train"]["processes"] = 2
    write_params(root / "params.yaml", params)
    again = _train(root)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"resuming from step {kept} of {kept + 5}" in again.stderr
    assert (root / "models" / "generator.pt").is_file()

    params["train"] |= {"max_steps": kept + 8, "processes": 1}  # finished, so not resumed: no refusal
    write_params(root / "params.yaml", params)
    longer = _train(root)
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert "starts at step 0" in longer.stderr


@pytest.mark.parametrize("setting", ["generate", "dropout"])
def test_torchrun_by_hand_resumes_the_stage_launched_run(request, tmp_path, setting):
    """`torchrun -m ganops train` (the multi-node recipe's launcher) runs the same workers: it resumes
    a run the stage launched, killed after step 10, from rank 0's checkpoint, and trains the same
    bits: G, D, their optimizers, the EMA generator and the noise stream, tensor by tensor, and the
    same outputs, which it writes itself. With dropout in D, each rank replays its own masks."""
    if setting == "generate":
        trained = request.getfixturevalue("runs")["generate-2"][0]
    else:
        trained = request.getfixturevalue("dropout_run")
    root = tmp_path / "resumed"
    shutil.copytree(trained / "data", root / "data")
    shutil.copytree(trained / "models" / "checkpoints", root / "models" / "checkpoints")
    shutil.copy(trained / "models" / "evaluator.pt", root / "models" / "evaluator.pt")
    shutil.copy(trained / "params.yaml", root / "params.yaml")
    (run,) = (root / "models" / "checkpoints").iterdir()
    # What a run killed after step 10 leaves: no step 12, no grid, not marked finished, no outputs.
    (run / "step_00000012.pt").unlink()
    (run / "finished.json").unlink()
    shutil.rmtree(run / "samples")
    assert not (root / "reports").exists() and not (root / "models" / "generator.pt").exists()

    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    result = _train(root, *torchrun)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "launching" not in result.stderr  # the workers train; none launches more
    assert result.stderr.count("resuming from step 10 of 12") == 1

    written = ("reports/train/losses.csv", "reports/train/live.csv", "reports/samples/epoch_001.png")
    generator, final = "models/generator.pt", f"models/checkpoints/{run.name}/step_00000012.pt"
    assert [name for name in (generator, *written) if not (root / name).is_file()] == []  # it wrote them
    assert _differences(_load(root / final), _load(trained / final)) == []  # history: losses in float64
    assert _differences(_load(root / generator), _load(trained / generator)) == []  # the EMA generator
    for name in written:
        assert (root / name).read_bytes() == (trained / name).read_bytes(), name


def test_two_nodes_train_what_one_node_with_two_processes_does(project, runs, tmp_path):
    """Two "nodes" (folders, on this machine) of one process each, started by deploy/train-node.sh as
    the pods of an Indexed Job would be: node 0 writes every output, node 1 none, and they train the
    same bits as the stage's 2 workers on one node (same world size, same share of the machine each)."""
    import socket

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    roots = [
        _copy(project, tmp_path / f"node{rank}", **GENERATE, **{"train.processes": 1, "cpu.threads": 1})
        for rank in (0, 1)
    ]
    nodes = [
        subprocess.Popen(
            ["sh", str(REPO / "deploy" / "train-node.sh"), sys.executable, "-m", "ganops", "train"],
            cwd=root,
            env={
                **_env(),
                "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # node 1 runs `ganops train`
                "PET_NNODES": "2",
                "JOB_COMPLETION_INDEX": str(rank),
                "PET_MASTER_ADDR": "127.0.0.1",
                "PET_MASTER_PORT": str(port),
            },
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank, root in enumerate(roots)
    ]
    errors = [node.communicate(timeout=600)[1] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], errors
    assert "distributed: 2 processes (gloo)" in errors[0] and "node 1 trained its share" in errors[1]
    assert (roots[0] / "models" / "generator.pt").is_file() and not (roots[1] / "reports").exists()
    assert _losses(roots[0]) == _losses(runs["generate-2"][0])


def test_a_world_size_that_does_not_divide_the_batch_is_refused(project, tmp_path):
    """In params, before anything runs; under torchrun by hand, by every worker before it joins."""
    root = _copy(project, tmp_path / "odd", **{"train.processes": 3})
    result = _train(root)
    assert result.returncode != 0
    assert "train.batch_size 32 (the global batch) is not divisible by train.processes 3" in result.stderr
    root = _copy(project, tmp_path / "odd-by-hand")
    by_hand = _train(
        root, sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=3"
    )
    assert by_hand.returncode != 0
    assert "train.batch_size: 32 (the global batch) is not divisible by the world size 3" in by_hand.stderr
    assert not (root / "models" / "checkpoints").exists()
