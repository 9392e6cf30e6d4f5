"""What pinned CPU kernels cost: each torch stage timed with ``cpu.kernels: avx2`` and ``native``.

The kernels are chosen when torch loads, so every measurement is a fresh process running the real
stage (``run_stage``, as ``ganops <stage>`` does) on one prepared project; the two modes take turns
within each round, so a drifting machine load falls on both alike. Each row prints the median
seconds of each mode and native's speed-up over pinned (above 1: pinning costs that much).

    python benchmarks/cpu_kernels.py                       # params.yaml, reduced budgets, 3 rounds
    python benchmarks/cpu_kernels.py --threads 1 --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

MODES = ("avx2", "native")
STAGES = ("evaluator", "train", "evaluate")
# Budgets that take seconds, not minutes, yet run the same kernels as the full stages.
REDUCED = {
    "evaluator": {"epochs": 1, "min_steps": 0},
    "train": {"max_steps": 400, "eval_every": 0},
    "evaluate": {"num_samples": 2000, "num_real": 2000, "kid_subset_size": 1000, "prdc_samples": 1000},
}


def run_stage(project: Path, stage: str) -> tuple[float, str]:
    """Seconds the stage took in a fresh process (its own timing log, start-up left out), and the
    kernels it logged as in effect (``ganops.cpu.check``)."""
    code = f"from ganops.stages import run_stage; run_stage({stage!r}, 'params.yaml')"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ATEN_", "ONEDNN_", "MKL_", "OMP_"))}
    subprocess.run([sys.executable, "-c", code], cwd=project, env=env, check=True, capture_output=True)
    log = json.loads((project / "logs" / f"{stage}.json").read_text())
    return log["seconds"], f"{log['cpu_capability']}, MKL {log['mkl_branch']}, {log['threads']} threads"


def with_mode(project: Path, base: dict, mode: str, threads: int, reduce: bool) -> None:
    raw = json.loads(json.dumps(base))
    raw["cpu"] = {"kernels": mode, "threads": threads}
    for section, values in REDUCED.items() if reduce else ():
        raw.setdefault(section, {}).update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-train", type=int, default=10_000, help="training images prepared")
    parser.add_argument("--as-given", action="store_true", help="the params' own budgets (tiny params)")
    args = parser.parse_args()

    base = yaml.safe_load(Path(args.params).read_text())
    base.setdefault("data", {})["max_train"] = args.max_train
    seconds: dict[tuple[str, str], list[float]] = {(s, m): [] for s in STAGES for m in MODES}
    in_effect: dict[str, set[str]] = {m: set() for m in MODES}
    with tempfile.TemporaryDirectory(prefix="ganops-cpu-kernels-") as tmp:
        project = Path(tmp)
        with_mode(project, base, "avx2", args.threads, not args.as_given)
        run_stage(project, "prepare")
        for _ in range(args.rounds):
            for mode in MODES:
                with_mode(project, base, mode, args.threads, not args.as_given)
                for stage in STAGES:  # evaluate scores the generator that train just wrote
                    took, kernels = run_stage(project, stage)
                    seconds[stage, mode].append(took)
                    in_effect[mode].add(kernels)

    print(f"\n{args.threads} threads, median of {args.rounds} rounds\n")
    print("| stage | pinned avx2 (s) | native (s) | native speed-up |")
    print("|---|---|---|---|")
    for stage in STAGES:
        pinned, native = (statistics.median(seconds[stage, m]) for m in MODES)
        print(f"| {stage} | {pinned:.2f} | {native:.2f} | {pinned / native:.2f}x |")
    print("\n| mode | kernels in effect (every stage) |")
    print("|---|---|")
    for mode in MODES:
        print(f"| {mode} | {'; '.join(sorted(in_effect[mode]))} |")


if __name__ == "__main__":
    main()
