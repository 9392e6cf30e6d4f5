"""The quality curve: what more training buys, per configuration, measured point by point.

Each configuration trains to the first epoch count, is scored, then resumes to the next one (the
train stage resumes a run whose fingerprint matches; epochs are not part of it, and a resumed run
is bit-identical to an uninterrupted one on CPU), so a 16-epoch curve costs 16 epochs, not 31.
Every point is scored by the evaluate stage (same evaluator, same test split, same sample counts):
fid_domain with its 95% bootstrap interval, kid_domain, precision and recall, and the train wall
time spent so far. Rows go to a JSONL file as they finish (an interrupted run keeps its points);
one CSV per configuration (a DVC plot, see dvc.yaml) and the PNG are rewritten from all its rows.

    python benchmarks/quality_curve.py                                   # docs' curve: 3 configs, 1..16 epochs
    python benchmarks/quality_curve.py --only dcgan-ns --epochs 1 2      # a part of it
    python benchmarks/quality_curve.py --plot-only                       # redraw from the JSONL

The project (``--project``) must hold data/prepared and models/evaluator.pt: ``dvc repro evaluator``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

from ganops.config import parse_params
from ganops.stages import evaluate as evaluate_stage
from ganops.stages import train as train_stage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import CONFIGS, NEUTRAL, with_overrides, workspace  # noqa: E402 - benchmarks/ is not a package

CURVE_CONFIGS = ["dcgan-ns", "dcgan-hinge-sn", "dcgan-wgan-gp"]
METRICS = ["fid", "kid", "prdc", "fid_bootstrap"]
CSV_COLUMNS = (
    "epochs",
    "steps",
    "train_seconds",
    "fid_domain",
    "fid_low",
    "fid_high",
    "kid_domain",
    "precision",
    "recall",
)


def curve(
    base: dict, shared: Path, work: Path, config: str, seed: int, epochs: list[int], max_steps: int | None
):
    """Train ``config`` through the epoch counts in order, yielding one scored row per point."""
    layout = workspace(shared, work)
    trained_seconds = 0.0
    for count in sorted(epochs):
        overrides = {
            **NEUTRAL,
            **CONFIGS[config],
            "train.epochs": count,
            "train.max_steps": max_steps,
            "evaluate.metrics": METRICS,
        }
        raw = with_overrides(base, overrides)
        raw["seed"] = seed
        params = parse_params(raw, origin=f"{config} seed {seed} epochs {count}")
        began = time.perf_counter()
        result = train_stage.run(params, layout)
        trained_seconds += time.perf_counter() - began
        metrics = evaluate_stage.run(params, layout)
        yield {
            "config": config,
            "seed": seed,
            "epochs": count,
            "steps": result["steps"],
            "resumed_from": json.loads(layout.timings("train").read_text())["resumed_from"],
            "train_seconds": round(trained_seconds, 1),
            "threads": torch.get_num_threads(),
            "fid_domain": metrics["fid_domain"],
            "fid_low": metrics["fid_domain_ci95_low"],
            "fid_high": metrics["fid_domain_ci95_high"],
            "kid_domain": metrics["kid_domain"],
            "precision": metrics["precision_domain"],
            "recall": metrics["recall_domain"],
            "floor": metrics["floor"]["fid_domain"],
        }


def latest_rows(jsonl: Path) -> list[dict]:
    """One row per (config, epochs): the newest line wins, so a rerun replaces its points."""
    rows: dict[tuple[str, int], dict] = {}
    for line in jsonl.read_text().splitlines():
        row = json.loads(line)
        rows[(row["config"], row["epochs"])] = row
    return sorted(rows.values(), key=lambda r: (r["config"], r["epochs"]))


def write_csvs(rows: list[dict], folder: Path) -> None:
    """One file per configuration: DVC draws one line per file (dvc.yaml's quality_curve plot)."""
    folder.mkdir(parents=True, exist_ok=True)
    for config in dict.fromkeys(r["config"] for r in rows):
        with open(folder / f"{config}.csv", "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(CSV_COLUMNS)
            for row in (r for r in rows if r["config"] == config):
                writer.writerow([_fmt(row[c]) for c in CSV_COLUMNS])


def _fmt(value) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (by_time, by_epochs) = plt.subplots(1, 2, figsize=(11, 4.2))
    for config in dict.fromkeys(r["config"] for r in rows):
        mine = [r for r in rows if r["config"] == config]
        fid = [r["fid_domain"] for r in mine]
        err = [
            [r["fid_domain"] - r["fid_low"] for r in mine],
            [r["fid_high"] - r["fid_domain"] for r in mine],
        ]
        by_time.errorbar(
            [r["train_seconds"] / 60 for r in mine], fid, yerr=err, marker="o", capsize=3, label=config
        )
        by_epochs.errorbar([r["epochs"] for r in mine], fid, yerr=err, marker="o", capsize=3, label=config)
    floor = min(r["floor"] for r in rows)
    for axis, label in ((by_time, "train wall time (minutes, 1 CPU thread)"), (by_epochs, "epochs")):
        axis.axhline(floor, color="grey", linestyle=":", label="real-data floor")
        axis.set_yscale("log")
        axis.set_xlabel(label)
        axis.set_ylabel("fid_domain (95% interval), lower is better")
        axis.grid(True, which="both", alpha=0.3)
    by_epochs.axvline(2, color="black", alpha=0.3, linewidth=4, label="make run's budget (120,000 images)")
    by_epochs.legend(loc="lower left", fontsize="small")
    by_epochs.set_xscale("log", base=2)
    by_epochs.set_xticks(
        sorted({r["epochs"] for r in rows}), [str(e) for e in sorted({r["epochs"] for r in rows})]
    )
    by_time.legend()
    figure.suptitle("Fashion-MNIST 32 px: quality against training (each point resumes the previous one)")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--project", default=".", help="holds data/prepared and models/evaluator.pt")
    parser.add_argument("--only", nargs="*", default=CURVE_CONFIGS, choices=list(CONFIGS))
    parser.add_argument("--epochs", nargs="*", type=int, default=[1, 2, 4, 8, 16])
    parser.add_argument("--seed", type=int, default=None, help="default: params.yaml's seed")
    parser.add_argument("--max-steps", type=int, default=None, help="cap on G steps per point (a smoke run)")
    parser.add_argument("--jsonl", default="docs/quality_curve.jsonl")
    parser.add_argument("--csv-dir", default="docs/quality_curve", help="one CSV per configuration")
    parser.add_argument("--png", default="docs/images/quality_curve.png")
    parser.add_argument("--plot-only", action="store_true", help="redraw CSV and PNG from the JSONL")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    jsonl = Path(args.jsonl)
    if not args.plot_only:
        base = yaml.safe_load(Path(args.params).read_text())
        seed = base.get("seed", 0) if args.seed is None else args.seed
        shared = Path(args.project).resolve()
        for needed in (shared / "data" / "prepared" / "manifest.json", shared / "models" / "evaluator.pt"):
            if not needed.exists():
                sys.exit(f"{needed}: not found; run `dvc repro evaluator` first")
        jsonl.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="ganops-curve-") as tmp:
            for config in args.only:
                for row in curve(base, shared, Path(tmp) / config, config, seed, args.epochs, args.max_steps):
                    with open(jsonl, "a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(
                        f"{config} {row['epochs']} epochs ({row['steps']} steps, {row['train_seconds']:.0f} s): "
                        f"fid_domain {row['fid_domain']:.3f} [{row['fid_low']:.3f}, {row['fid_high']:.3f}] "
                        f"kid {row['kid_domain']:.4f} precision {row['precision']:.3f} recall {row['recall']:.3f}",
                        flush=True,
                    )
    rows = latest_rows(jsonl)
    write_csvs(rows, Path(args.csv_dir))
    plot(rows, Path(args.png))
    print(f"{len(rows)} points -> {args.csv_dir}/, {args.png}")


if __name__ == "__main__":
    main()
