"""Orchestration overhead: wall time of a no-op `dvc repro`, a fully cached Prefect rerun, `ganops --help`.

    python benchmarks/pipeline.py [--repeats 3] [--workspace DIR]

Builds a throw-away project (git + DVC, the repository's src/, DVC files and pipelines/, the tests'
tiny params on fabricated Fashion-MNIST-format files), runs the pipeline once under DVC and then
once under Prefect, and after each times what should do nothing: `dvc repro` again (target <= 1 s on
idle cores) and `python pipelines/flow.py` in a fresh process (every task a cache hit; this includes
starting Prefect's temporary API server). Both run `validate` (always_changed) and nothing else.
Beside them, DVC's own floor: a no-op `dvc repro` of a throw-away repository with one trivial stage
(the part of the no-op time no project can remove). `ganops --help` (target <= 1 s) is timed in the repository.
The repository's own outputs are never touched. Each figure is the median of --repeats runs.
With --workspace, the same is timed in DIR instead, a workspace where `dvc repro` has run (`make run`'s,
with its own params and data); Prefect then keeps its state in a temporary PREFECT_HOME.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from ganops.stages import DVC_FILES, declared_stages  # noqa: E402

from conftest import (  # noqa: E402
    copy_from_repo,
    fabricate_images,
    stages_dvc_ran,
    tiny_params,
    write_idx,
    write_params,
)

TARGETS = {"no-op dvc repro": 1.0, "ganops --help": 1.0}  # the first: issue 22, on an idle machine
# Stages the DVC files mark always_changed (validate: it checks params.yaml first on every repro).
ALWAYS_RUNS = [
    name for stages in declared_stages(REPO).values() for name, stage in stages.items()
    if stage.get("always_changed")
]  # fmt: skip


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def run(name: str, cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    began = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        fail(f"{name} failed: `{' '.join(cmd)}` exited {result.returncode}: {result.stderr.strip()[-1500:]}")
    return seconds, result.stdout + result.stderr


def tool_env(prefect_home: Path) -> dict:
    """The environment of every timed command: no outside MLflow or Prefect settings, dvc on PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env.update(DVC_NO_ANALYTICS="1", PREFECT_HOME=str(prefect_home))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # The temporary API server needs more than its default 20 s to start on a loaded machine.
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    return env


def project(root: Path) -> dict:
    """A throw-away git + DVC project with the tiny params; the environment to run it in."""
    data = root / "idx"
    data.mkdir()
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 512), ("t10k", 256)):
        images, labels = fabricate_images(n, rng)
        write_idx(data / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(data / f"{prefix}-labels-idx1-ubyte.gz", labels)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src", root / "src", ignore=ignore)
    shutil.copytree(REPO / "pipelines", root / "pipelines", ignore=ignore)
    copy_from_repo(root, *DVC_FILES, ".gitignore")
    from ganops.config import parse_params

    write_params(root / "params.yaml", parse_params(tiny_params(data)).model_dump())
    env = tool_env(root / ".prefect-home")
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "bench@example.com"],
        ["git", "config", "user.name", "bench"],
        ["dvc", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "init"],
    ):
        run("set-up", cmd, root, env)
    return env


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--workspace", type=Path, help="a workspace where `dvc repro` has run (default: a throw-away project)"
    )
    args = parser.parse_args()
    bin_dir = Path(sys.executable).parent
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="ganops-pipeline-") as tmp:
        if args.workspace:
            root = args.workspace.resolve()
            if not (root / "dvc.lock").is_file() or not (root / "pipelines/flow.py").is_file():
                fail(
                    f"--workspace {root}: no dvc.lock or pipelines/flow.py there; run `make run` in it first"
                )
            env = tool_env(Path(tmp) / "prefect-home")
        else:
            root = Path(tmp)
            env = project(root)
        # Each tool is timed on its own: a Prefect run that runs a stage rewrites its outputs (timings in
        # reports/train.json, a new model version), which DVC would then see as changed, and back.
        print("first dvc repro (not timed) ...", flush=True)
        run("first dvc repro", ["dvc", "repro"], root, env)
        for _ in range(args.repeats):
            seconds, out = run("no-op dvc repro", ["dvc", "repro"], root, env)
            reran = [s for s in stages_dvc_ran(out) if s not in ALWAYS_RUNS]
            if reran:
                fail(f"no-op dvc repro reran {', '.join(reran)}:\n{out[-1500:]}")
            results.setdefault("no-op dvc repro", []).append(seconds)
        print("first Prefect run (not timed) ...", flush=True)
        run("first Prefect run", [sys.executable, "pipelines/flow.py"], root, env)
        for _ in range(args.repeats):
            seconds, out = run("cached Prefect rerun", [sys.executable, "pipelines/flow.py"], root, env)
            # The flow's summary line (ganops.summary): "ganops: ran validate · cached prepare, ... · ..."
            summary = re.search(r"ganops: ran (.+?) · cached ", out)
            reran = summary and [s for s in summary.group(1).split(", ") if s not in ALWAYS_RUNS]
            if summary is None or reran:
                fail(
                    f"cached Prefect rerun was not all cache hits ({reran or 'no summary line'}):\n{out[-1500:]}"
                )
            results.setdefault("cached Prefect rerun (fresh process)", []).append(seconds)
    with tempfile.TemporaryDirectory(prefix="ganops-dvc-floor-") as tmp:
        # DVC's own floor on this machine: a no-op repro of a repository with one trivial stage.
        floor, env = Path(tmp), {**os.environ, "DVC_NO_ANALYTICS": "1"}
        (floor / "dvc.yaml").write_text("stages:\n  one:\n    cmd: echo one > one.txt\n    outs: [one.txt]\n")
        for cmd in (["git", "init", "-q"], ["dvc", "init", "-q"], ["dvc", "repro", "-q"]):
            run("floor set-up", cmd, floor, env)
        for _ in range(args.repeats):
            seconds, _ = run("DVC floor", ["dvc", "repro"], floor, env)
            results.setdefault("no-op dvc repro of a one-stage repo (DVC's floor)", []).append(seconds)
    for _ in range(max(args.repeats, 5)):
        seconds, _ = run("ganops --help", [str(bin_dir / "ganops"), "--help"], REPO, dict(os.environ))
        results.setdefault("ganops --help", []).append(seconds)

    print("\n| what | median s | runs | target |\n|---|---|---|---|")
    missed = []
    for name, values in results.items():
        median = statistics.median(values)
        target = TARGETS.get(name)
        verdict = "" if target is None else (f"<= {target:g} s " + ("met" if median <= target else "MISSED"))
        if target is not None and median > target:
            missed.append(name)
        print(f"| {name} | {median:.2f} | {', '.join(f'{v:.2f}' for v in values)} | {verdict} |")
    floor = statistics.median(results["no-op dvc repro of a one-stage repo (DVC's floor)"])
    ours = statistics.median(results["no-op dvc repro"])
    print(
        f"no-op dvc repro: {ours:.2f} s = DVC's floor {floor:.2f} s + {ours - floor:.2f} s (validate and 8 stages)"
    )
    if missed:
        print(f"missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
