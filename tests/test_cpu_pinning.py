"""The same params give the same bytes on Intel and AMD CPUs.

A tiny pinned prepare -> evaluator -> train run must reproduce md5s committed here, on whatever CPU
runs the suite, and again on an emulated CPU of the other vendor: QEMU's user-mode emulator answers
CPUID as that CPU would (vendor, model, AVX2), so MKL, oneDNN and ATen pick the code paths they take
there. Before the pin put MKL on its COMPATIBLE branch and the evaluator's Adam was fused, the
evaluator came out one way on Intel and another on AMD (docs/reproducibility.md); both tests fail with
either change undone.

Without the pin (``cpu.kernels: native``), what the libraries are told about the machine goes
through, so capping the ISA and the threads by environment variables is a fair control there.
"""

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

# Written by a pinned run of the tiny params below (cpu.kernels: avx2, cpu.threads: 2). They held on
# the machines listed in docs/reproducibility.md ("Where the bytes hold"); a CPU where this test
# fails is a finding for that table, not a reason to edit these values.
COMMITTED_MD5 = {
    "data/prepared/train.npy": "7db4c5c3e9682fd6e5bc340f8e9be824",
    "models/evaluator.pt": "2d7c3cd9a108a125a78b8c8427239e82",
    "models/generator.pt": "8d13ab7402b722c0074c48b345efb12d",
    "reports/train/losses.csv": "118d91b2c2aab52fc0af3d6233ad06eb",
}
# The other vendor's CPU for the emulated run: each an AVX2 server CPU of QEMU's models.
EMULATED = {"AuthenticAMD": "Haswell-v4", "GenuineIntel": "EPYC-Rome"}
LIBRARY_VARIABLES = ("ATEN_", "ONEDNN_", "MKL_", "OMP_")


def _cpuinfo(field: str) -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith(field):
            return line.split(":", 1)[1].strip()
    return "unknown"


def cpu_vendor() -> str:
    return _cpuinfo("vendor_id")


def cpu_name() -> str:
    return f"{_cpuinfo('model name')} ({cpu_vendor()}, family {_cpuinfo('cpu family')} model {_cpuinfo('model')})"


def _stages(project: Path, *names: str, machine: dict[str, str], emulate: str | None = None) -> None:
    """Run stages in one fresh process (the pin is set before torch loads, as `ganops <stage>` does)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(LIBRARY_VARIABLES)} | machine
    code = f"from ganops.stages import run_stage\nfor name in {names!r}: run_stage(name, 'params.yaml')"
    command = [sys.executable, "-c", code]
    if emulate:
        command = ["qemu-x86_64", "-cpu", emulate, *command]
    subprocess.run(command, cwd=project, env=env, check=True, capture_output=True, timeout=900)


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


def _written(project: Path) -> dict[str, str]:
    return {output: _md5(project / output) for output in COMMITTED_MD5}


def _logged(project: Path, stage: str) -> dict:
    log = json.loads((project / "logs" / f"{stage}.json").read_text())
    return {key: log[key] for key in ("cpu_capability", "mkl_branch", "threads")}


PINNED = {"kernels": "avx2", "threads": 2}
IN_EFFECT = {"cpu_capability": "AVX2", "mkl_branch": "COMPATIBLE", "threads": 2}


@pytest.fixture(scope="module")
def pinned_here(tiny_idx, tmp_path_factory) -> Path:
    project = _project(tmp_path_factory.mktemp("pinned") / "here", tiny_idx, PINNED)
    _stages(project, "prepare", "evaluator", "train", machine={})
    return project


def test_a_pinned_run_writes_the_committed_bytes_on_this_cpu(pinned_here):
    written = _written(pinned_here)
    assert written == COMMITTED_MD5, f"this {cpu_name()} wrote {written}: see docs/reproducibility.md"
    for stage in ("evaluator", "train"):
        assert _logged(pinned_here, stage) == IN_EFFECT  # what took effect is recorded per stage


@pytest.mark.skipif(shutil.which("qemu-x86_64") is None, reason="needs qemu-user (make test installs it)")
def test_a_pinned_run_writes_the_same_bytes_on_the_other_vendors_cpu(tiny_idx, tmp_path):
    model = EMULATED.get(cpu_vendor())
    assert model, f"no emulated counterpart for a {cpu_vendor()} CPU"
    there = _project(tmp_path / model, tiny_idx, PINNED)
    _stages(there, "prepare", "evaluator", "train", machine={}, emulate=model)
    written = _written(there)
    assert written == COMMITTED_MD5, f"an emulated {model} wrote {written}"
    assert _logged(there, "evaluator") == IN_EFFECT


def test_unpinned_stages_differ_under_another_isa_and_thread_count(pinned_here, tiny_idx, tmp_path):
    """The control: without the pin, capping the ISA and the threads changes the bytes (and the
    pin's own environment variables are what stops that)."""
    smaller = {
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "SSE41",
        "MKL_CBWR": "COMPATIBLE",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    prepared = pinned_here / "data" / "prepared"
    native = {"kernels": "native", "threads": None}
    here, there = (_project(tmp_path / n, tiny_idx, native, prepared) for n in ("here", "there"))
    _stages(here, "evaluator", machine={})
    _stages(there, "evaluator", machine=smaller)
    assert _md5(here / "models/evaluator.pt") != _md5(there / "models/evaluator.pt")
    capabilities = {_logged(p, "evaluator")["cpu_capability"] for p in (here, there)}
    assert "DEFAULT" in capabilities and len(capabilities) == 2
