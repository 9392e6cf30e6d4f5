"""The same params give the same bytes on another CPU: stages pinned by ``cpu.kernels: avx2`` and
``cpu.threads`` write identical models whatever instruction set and thread count the machine
offers. "Another machine" is this one with its kernels capped lower (SSE instead of AVX-512/AMX)
and one thread instead of two, which is how the libraries see an older or smaller CPU; the
control shows that this really changes the bytes of unpinned stages."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import tiny_params, write_params

# What an older or smaller machine looks like to the libraries: no AVX2/AVX-512 kernels, one thread.
SMALLER_MACHINE = {
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "MKL_CBWR": "COMPATIBLE",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
PINNING_VARIABLES = (*SMALLER_MACHINE, "ATEN_CPU_CAPABILITY")


def _stages(project: Path, *names: str, machine: dict[str, str]) -> None:
    """Run stages in one fresh process (the pin is set before torch loads, as `ganops <stage>` does)."""
    env = {k: v for k, v in os.environ.items() if k not in PINNING_VARIABLES} | machine
    code = f"from ganops.stages import run_stage\nfor name in {names!r}: run_stage(name, 'params.yaml')"
    subprocess.run(
        [sys.executable, "-c", code], cwd=project, env=env, check=True, capture_output=True, timeout=300
    )


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _project(root: Path, tiny_idx: Path, cpu: dict, prepared: Path | None = None) -> Path:
    root.mkdir()
    params = tiny_params(tiny_idx, **{"train.max_steps": 6, "evaluator.epochs": 1})
    params["cpu"] = cpu
    write_params(root / "params.yaml", params)
    if prepared is not None:
        shutil.copytree(prepared, root / "data" / "prepared")
    return root


@pytest.fixture(scope="module")
def pinned_on_a_smaller_machine(tiny_idx, tmp_path_factory) -> Path:
    project = _project(
        tmp_path_factory.mktemp("pinned") / "smaller", tiny_idx, {"kernels": "avx2", "threads": 2}
    )
    _stages(project, "prepare", "evaluator", "train", machine=SMALLER_MACHINE)
    return project


def test_pinned_stages_write_the_same_bytes_under_another_isa_and_thread_count(
    pinned_on_a_smaller_machine, tiny_idx, tmp_path
):
    smaller = pinned_on_a_smaller_machine
    this = _project(
        tmp_path / "this", tiny_idx, {"kernels": "avx2", "threads": 2}, smaller / "data" / "prepared"
    )
    _stages(this, "evaluator", "train", machine={})
    for output in ("models/evaluator.pt", "models/generator.pt", "reports/train/losses.csv"):
        assert _md5(this / output) == _md5(smaller / output), output
    logged = {json.loads((p / "logs/train.json").read_text())["cpu_capability"] for p in (this, smaller)}
    assert logged == {"AVX2"}  # the capability in effect is recorded per stage


def test_unpinned_stages_differ_between_the_two_machines(pinned_on_a_smaller_machine, tiny_idx, tmp_path):
    """The control: without the pin, the same params give other bytes on the 'smaller machine'."""
    prepared = pinned_on_a_smaller_machine / "data" / "prepared"
    native = {"kernels": "native", "threads": None}
    here, there = (_project(tmp_path / n, tiny_idx, native, prepared) for n in ("here", "there"))
    _stages(here, "evaluator", machine={})
    _stages(there, "evaluator", machine=SMALLER_MACHINE)
    assert _md5(here / "models/evaluator.pt") != _md5(there / "models/evaluator.pt")
    capabilities = {
        json.loads((p / "logs/evaluator.json").read_text())["cpu_capability"] for p in (here, there)
    }
    assert "DEFAULT" in capabilities and len(capabilities) == 2
