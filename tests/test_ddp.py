"""Data-parallel training: 2 CPU processes under torchrun (gloo) against one process, same global batch."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ganops.config import parse_params
from ganops.stages import Layout
from ganops.stages.prepare import run as prepare

from conftest import tiny_params, write_params

STEPS = 12


@pytest.fixture(scope="module")
def project(tiny_idx, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddp-prepared")
    params = tiny_params(tiny_idx, **{"train.max_steps": STEPS, "train.checkpoint_every": 5})
    write_params(root / "params.yaml", params)
    prepare(parse_params(params), Layout(root))
    return root


def _copy(project: Path, dest: Path) -> Path:
    shutil.copytree(project / "data", dest / "data")
    shutil.copy(project / "params.yaml", dest / "params.yaml")
    return dest


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    return {**env, "OMP_NUM_THREADS": "1"}  # two processes on a small machine


def _torchrun(root: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    return subprocess.run(
        [*command, "-m", "ganops", "train"], cwd=root, env=_env(), capture_output=True, text=True, timeout=600
    )


def _single(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ganops", "train"],
        cwd=root,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def _losses(root: Path) -> list[dict]:
    with open(root / "reports" / "train" / "losses.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def runs(project, tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess, Path]:
    ddp = _copy(project, tmp_path_factory.mktemp("ddp"))
    single = _copy(project, tmp_path_factory.mktemp("single"))
    result = _torchrun(ddp)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _single(single).returncode == 0
    return ddp, result, single


def test_two_processes_complete_and_rank_zero_writes_once(runs):
    ddp, result, _ = runs
    assert "distributed: 2 processes (gloo), global batch 32, 16 per rank" in result.stderr
    assert result.stderr.count("trained 12 steps") == 1  # only rank 0 writes the report and says so
    rows = _losses(ddp)
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    assert sorted(p.name for p in (ddp / "models" / "checkpoints").glob("*/step_*.pt")) == [
        "step_00000010.pt",
        "step_00000012.pt",
    ]
    assert (ddp / "models" / "generator.pt").is_file() and (ddp / "reports" / "train.json").is_file()
    assert [p.name for p in (ddp / "reports" / "samples").iterdir()] == ["epoch_001.png"]


def test_loss_curve_matches_one_process_with_the_same_global_batch(runs):
    ddp, _, single = runs
    a, b = _losses(ddp), _losses(single)
    assert len(a) == len(b) == STEPS
    # Same data, latents and gradients (DDP averages them); only BatchNorm's statistics are per rank
    # (16 images instead of 32), so the curves agree closely but not bit for bit.
    for key in ("loss_d", "loss_g"):
        diffs = [abs(float(x[key]) - float(y[key])) for x, y in zip(a, b, strict=True)]
        assert max(diffs) < 0.15, (key, diffs)
        assert diffs[0] < 0.05, (key, diffs)  # the first step differs only by BatchNorm


def test_resume_under_ddp_continues_from_rank_zero_checkpoint(runs, tmp_path):
    ddp, _, _ = runs
    resumed = _copy(ddp, tmp_path / "resumed")
    shutil.copytree(ddp / "models", resumed / "models")
    shutil.copytree(ddp / "reports", resumed / "reports")
    next((resumed / "models" / "checkpoints").glob("*/step_00000012.pt")).unlink()  # killed after step 10
    result = _torchrun(resumed)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.count("resuming from step 10 of 12") == 1
    assert _losses(resumed)[:10] == _losses(ddp)[:10]


def test_a_world_size_that_does_not_divide_the_batch_stops_before_starting(project, tmp_path):
    root = _copy(project, tmp_path / "odd")
    result = _torchrun(root, nproc=3)
    assert result.returncode != 0
    assert "train.batch_size: 32 (the global batch) is not divisible by the world size 3" in result.stderr
    assert not (root / "models").exists()
