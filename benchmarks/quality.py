"""Quality bar: several GAN configurations x seeds under one budget, on the embedded default data.

Each run trains with the repository's params.yaml plus a configuration's overrides and a seed,
then scores the EMA generator with the evaluate stage (same evaluator, same reference split, same
sample counts). Rows print mean +- spread (sample std) over seeds of fid_domain, its ratio to the
real-data floor, and the train wall time. Every number is measured in this run.

It calls the stage functions rather than ``dvc exp run``: the experiments share one prepared
dataset and one evaluator (as DVC would reuse them) without copying the workspace per run, which
also keeps the script usable while the working tree has uncommitted changes.

    python benchmarks/quality.py                       # 5 configurations x 3 seeds, params.yaml budget
    python benchmarks/quality.py --epochs 1 --seeds 3  # a reduced budget
    python benchmarks/quality.py --only dcgan-ns dcgan-hinge-sn cdcgan-ns
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml

from ganops.config import parse_params
from ganops.stages import Layout
from ganops.stages import evaluate as evaluate_stage
from ganops.stages import train as train_stage

# The first pipeline's default, kept as the reference row.
FIRST_DEFAULT = {
    "model.arch": "dcgan",
    "train.loss": "non_saturating",
    "train.batch_size": 64,
    "train.lr": 2e-4,
    "train.lr_g": None,
    "train.lr_d": None,
}
CONFIGS: dict[str, dict[str, object]] = {
    "first-default": FIRST_DEFAULT,
    "dcgan-ns": {"model.arch": "dcgan", "train.loss": "non_saturating"},
    "dcgan-hinge-sn": {"model.arch": "dcgan", "train.loss": "hinge", "model.spectral_norm": True},
    "dcgan-wgan-gp": {"model.arch": "dcgan", "train.loss": "wgan_gp"},
    "resnet-hinge-sn": {"model.arch": "resnet", "train.loss": "hinge", "model.spectral_norm": True},
    "cdcgan-ns": {"model.arch": "dcgan", "train.loss": "non_saturating", "model.conditional": True},
}
# What every configuration shares unless it says otherwise; batch size and learning rates come
# from params.yaml (the current default), so rows differ only in network and loss.
NEUTRAL = {
    "model.conditional": False,
    "model.spectral_norm": False,
    "model.d_dropout": 0.0,
    "train.n_critic": 1,
    "train.r1_gamma": 0.0,
    "train.label_smoothing": 0.0,
    "train.augment": [],
    "train.eval_every": 0,
    "evaluate.metrics": ["fid"],
}


def with_overrides(raw: dict, overrides: dict[str, object]) -> dict:
    raw = json.loads(json.dumps(raw))
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        raw.setdefault(section, {})[key] = value
    return raw


def workspace(shared: Path, work: Path) -> Layout:
    """A project folder that reuses ``shared``'s prepared data, evaluator and real-feature cache,
    as DVC would, so that runs differ only in what they train."""
    (work / "data").mkdir(parents=True, exist_ok=True)
    (work / "models").mkdir(parents=True, exist_ok=True)
    (work / "data" / "prepared").symlink_to(shared / "data" / "prepared")
    shutil.copy(shared / "models" / "evaluator.pt", work / "models" / "evaluator.pt")
    cache = shared / "models" / "feature_cache"
    if cache.is_dir():
        (work / "models" / "feature_cache").symlink_to(cache)
    return Layout(work)


def run_one(
    base: dict,
    root: Path,
    shared: Path,
    config: str,
    seed: int,
    epochs: int | None,
    max_steps: int | None,
    extra: dict,
) -> dict:
    work = root / f"{config}-{seed}"
    layout = workspace(shared, work)
    overrides = {**NEUTRAL, **CONFIGS[config], **extra, "seed": seed}
    if epochs is not None:
        overrides["train.epochs"] = epochs
    if max_steps is not None:
        overrides["train.max_steps"] = max_steps
    raw = with_overrides(base, {k: v for k, v in overrides.items() if k != "seed"})
    raw["seed"] = seed
    params = parse_params(raw, origin=f"{config} seed {seed}")
    began = time.perf_counter()
    train_stage.run(params, layout)
    train_seconds = time.perf_counter() - began
    metrics = evaluate_stage.run(params, layout)
    row = {
        "config": config,
        "seed": seed,
        "fid_domain": metrics["fid_domain"],
        "floor": metrics["floor"]["fid_domain"],
        "ratio": metrics["fid_domain_floor_ratio"],
        "train_seconds": train_seconds,
        "class_coverage": metrics.get("class_coverage"),
    }
    shutil.rmtree(work, ignore_errors=True)
    return row


def spread(values: list[float]) -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.3g} ± {sd:.2g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument(
        "--project", default=".", help="holds data/prepared and models/evaluator.pt (dvc repro)"
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds run from here (split runs over cores)"
    )
    parser.add_argument("--epochs", type=int, default=None, help="default: train.epochs of params.yaml")
    parser.add_argument(
        "--max-steps", type=int, default=None, help="cap on G steps per run (a reduced budget)"
    )
    parser.add_argument(
        "--extra", nargs="*", default=[], help="KEY=YAML overrides for every run, e.g. train.lr_d=4e-4"
    )
    parser.add_argument("--only", nargs="*", default=list(CONFIGS)[:5], choices=list(CONFIGS))
    parser.add_argument("--jsonl", default="reports/quality.jsonl", help="one JSON line per run is appended")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    base = yaml.safe_load(Path(args.params).read_text())
    extra = {k: yaml.safe_load(v) for k, v in (e.split("=", 1) for e in args.extra)}
    shared = Path(args.project).resolve()
    for needed in (shared / "data" / "prepared" / "manifest.json", shared / "models" / "evaluator.pt"):
        if not needed.exists():
            sys.exit(f"{needed}: not found; run `dvc repro evaluator` first")
    jsonl = Path(args.jsonl)
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ganops-quality-") as tmp:
        for config in args.only:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                row = run_one(base, Path(tmp), shared, config, seed, args.epochs, args.max_steps, extra)
                row["epochs"] = args.epochs or base.get("train", {}).get("epochs")
                row["max_steps"] = args.max_steps
                row["extra"] = args.extra
                rows.append(row)
                with open(jsonl, "a") as f:
                    f.write(json.dumps(row) + "\n")
                print(
                    f"{config} seed {seed}: fid_domain {row['fid_domain']:.3f} ratio {row['ratio']:.1f} "
                    f"train {row['train_seconds']:.0f} s",
                    flush=True,
                )
    print("\n| configuration | seeds | fid_domain | fid_domain / floor | train wall time (s) |")
    print("|---|---|---|---|---|")
    for config in args.only:
        mine = [r for r in rows if r["config"] == config]
        print(
            f"| {config} | {len(mine)} | {spread([r['fid_domain'] for r in mine])} "
            f"| {spread([r['ratio'] for r in mine])} | {spread([r['train_seconds'] for r in mine])} |"
        )


if __name__ == "__main__":
    main()
