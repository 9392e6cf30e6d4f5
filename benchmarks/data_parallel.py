"""Data-parallel training on one machine: images/s and time to a fixed live FID, 1 process against N.

    python benchmarks/data_parallel.py                       # the project's params in ., full budget
    python benchmarks/data_parallel.py --images 640 --eval-every 5 --project DIR --params FILE

Every setting trains the project's params (its prepared data, evaluator, model and budget) with
`ganops train` as the train stage runs it, each in a fresh process and folder, one after another:
on a CPU machine 1 process x 1 thread, 1 process x cpu.threads threads (the default), and
``--processes`` processes x 1 thread (cpu.threads = processes, which the stage shares out); on a
GPU machine 1 GPU against every visible GPU. Per setting: images/s over the run, the final live
FID (fid_domain of train.eval_samples EMA samples against the test split, every --eval-every
steps), and the wall time until live FID first fell to a target that every setting reached (the
worst final live FID, or --target): that is where a larger global throughput must also learn as
well per image. Ratios are against the first setting. The project must hold data/prepared and
models/evaluator.pt (`dvc repro evaluator`, or `make run`).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import with_overrides, workspace  # noqa: E402 - benchmarks/ is not a package


def settings(processes: int) -> list[tuple[str, dict]]:
    if torch.cuda.is_available():
        gpus = torch.cuda.device_count()
        return [("1 GPU", {"train.processes": 1}), (f"{gpus} GPUs", {"train.processes": gpus})]
    return [
        ("1 process x 1 thread", {"train.processes": 1, "cpu.threads": 1}),
        ("1 process x 2 threads (default)", {"train.processes": 1, "cpu.threads": 2}),
        (f"{processes} processes x 1 thread", {"train.processes": processes, "cpu.threads": processes}),
    ]


def train(raw: dict, overrides: dict, project: Path, work: Path) -> dict:
    """One setting's run: its log (images/s, seconds, steps) and its live FID rows."""
    workspace(project, work)
    (work / "params.yaml").write_text(yaml.safe_dump(with_overrides(raw, overrides), sort_keys=False))
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    done = subprocess.run(
        [sys.executable, "-m", "ganops", "train"], cwd=work, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.exit(f"error: training with {overrides} failed:\n{done.stderr[-3000:]}")
    log = json.loads((work / "logs" / "train.json").read_text())
    with open(work / "reports" / "train" / "live.csv") as f:
        live = [(int(row["step"]), float(row["fid_live"])) for row in csv.DictReader(f)]
    if not live:
        sys.exit("error: no live FID was measured; lower --eval-every below the run's steps")
    return {**log, "live": live}


def seconds_to(run: dict, target: float) -> float | None:
    """Train seconds until live FID first reached ``target`` (steps run at the run's mean rate)."""
    step = next((step for step, fid in run["live"] if fid <= target), None)
    return None if step is None else step / run["steps"] * run["train_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--project", type=Path, default=Path("."), help="holds data/prepared, models/evaluator.pt"
    )
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument(
        "--processes", type=int, default=2, help="processes of the data-parallel setting (CPU)"
    )
    parser.add_argument("--images", type=int, help="train.images budget (default: the params')")
    parser.add_argument("--eval-every", type=int, default=500, help="steps between live FID measurements")
    parser.add_argument("--target", type=float, help="live FID to time (default: the worst final one)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    raw = yaml.safe_load(args.params.read_text())
    common = {"train.eval_every": args.eval_every, "train.epochs": None, "train.max_steps": None}
    if args.images:
        common["train.images"] = args.images
    runs = []
    with tempfile.TemporaryDirectory(prefix="ganops-ddp-") as tmp:
        for i, (name, overrides) in enumerate(settings(args.processes)):
            print(f"training: {name} ...", file=sys.stderr, flush=True)
            runs.append(
                (name, train(raw, {**common, **overrides}, args.project.resolve(), Path(tmp) / str(i)))
            )

    target = args.target or max(run["live"][-1][1] for _, run in runs)
    base_rate, base_time = runs[0][1]["images_per_second"], seconds_to(runs[0][1], target)
    rows = []
    print(f"\nlive FID target: {target:.3f}; ratios against {runs[0][0]}\n")
    print("| setting | images/s | speed-up | final live FID | s to live FID <= target | time ratio |")
    print("|---|---|---|---|---|---|")
    for name, run in runs:
        reach = seconds_to(run, target)
        ratio = f"{reach / base_time:.2f}" if reach and base_time else "n/a"
        print(
            f"| {name} | {run['images_per_second']:.0f} | {run['images_per_second'] / base_rate:.2f}x "
            f"| {run['live'][-1][1]:.3f} | {'not reached' if reach is None else f'{reach:.0f}'} | {ratio} |"
        )
        rows.append({"setting": name, "target": target, "seconds_to_target": reach, **run})
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
