"""Fashion-MNIST at its own 28x28 against the padded 32x32, at equal train time, one evaluator.

The data's images are 28x28; the default used to pad them to 32x32 because the networks took
only powers of two. A 28x28 step costs less, so at equal train time the 28x28 model sees more
images. This script measures that ratio (both sizes trained side by side in this process), trains
each size per seed with the budget that ratio gives, and scores both with the same 32x32
evaluator on the same 32x32 test split: the 28x28 samples are padded with black exactly as
prepare pads the data (``fit_to_size``), so the two rows differ only in what was trained.

    python benchmarks/native_size.py                          # 3 seeds, params.yaml's budget
    python benchmarks/native_size.py --seeds 1 --first-seed 2 # one seed (split seeds over cores)
    python benchmarks/native_size.py --images 512 --probe-steps 4 --samples 256 --max-train 512  # smoke
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from pathlib import Path

import torch
import yaml

from ganops.config import parse_params
from ganops.data.prepared import load_split, to_unit_range
from ganops.metrics.evaluator import load_evaluator
from ganops.metrics.features import DomainFeaturesAndLogits, extract
from ganops.metrics.fid import fid
from ganops.models.io import load_generator
from ganops.runtime import Stream, stream
from ganops.stages import Layout
from ganops.stages import evaluator as evaluator_stage
from ganops.stages import prepare as prepare_stage
from ganops.stages import train as train_stage

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import NEUTRAL, with_overrides  # noqa: E402 - benchmarks/ is not a package

SCORED_AT = 32  # the evaluator's size: the padded default's


def params_for(base: dict, size: int, seed: int, images: int, max_train: int | None):
    raw = with_overrides(base, {**NEUTRAL, "data.image_size": size, "train.images": images})
    raw["train"]["epochs"] = None
    raw["data"]["max_train"] = max_train
    raw["seed"] = seed
    return parse_params(raw, origin=f"{size}x{size} seed {seed}")


def prepared_project(base: dict, root: Path, size: int, max_train: int | None) -> Layout:
    """data/prepared at ``size`` (and, at the scoring size, the evaluator), made once under ``root``."""
    layout = Layout(root / f"data-{size}")
    params = params_for(base, size, 0, 1, max_train)
    if not (layout.prepared / "manifest.json").exists():
        prepare_stage.run(params, layout)
    if size == SCORED_AT and not layout.evaluator.exists():
        evaluator_stage.run(params, layout)
    return layout


def train_seconds(
    base: dict, data: Layout, work: Path, size: int, seed: int, images: int, max_train
) -> float:
    layout = Layout(work)
    began = time.perf_counter()
    train_stage.train(params_for(base, size, seed, images, max_train), train_stage.train_paths(layout, data))
    return time.perf_counter() - began


def images_per_second(base: dict, data: Layout, work: Path, size: int, steps: int, max_train) -> float:
    """Images per second of a fresh run in ``work`` (a new folder: a finished run would only resume)."""
    batch = base["train"]["batch_size"]
    return steps * batch / train_seconds(base, data, work, size, 0, steps * batch, max_train)


@torch.no_grad()
def fid_at_scoring_size(generator: Path, scoring: Layout, samples: int, seed: int) -> float:
    """fid_domain of ``samples`` images, padded to the evaluator's size with black (-1) as prepare pads."""
    G, spec = load_generator(generator)
    net = DomainFeaturesAndLogits(load_evaluator(scoring.evaluator))
    pad = (SCORED_AT - spec.image_size) // 2
    noise = stream(seed, Stream.EVALUATE_Z)  # the evaluate stage's latents

    def generated():
        for start in range(0, samples, 500):
            images = G(torch.randn(min(500, samples - start), spec.latent_dim, generator=noise))
            yield torch.nn.functional.pad(images, (pad, pad, pad, pad), value=-1.0)

    test = load_split(scoring.prepared, "test").images
    real = extract(
        net, (to_unit_range(torch.from_numpy(test[i : i + 500])) for i in range(0, len(test), 500)), "cpu"
    )
    return fid(real.features, extract(net, generated(), "cpu").features)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--root", default="reports/native_size", help="prepared data, evaluator, runs")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=None, help="the 32x32 budget (default: params.yaml)")
    parser.add_argument("--probe-steps", type=int, default=400, help="steps per size when timing a step")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--max-train", type=int, default=None, help="cap on training images (smoke runs)")
    parser.add_argument("--jsonl", default="reports/native_size.jsonl")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    base = yaml.safe_load(Path(args.params).read_text())
    budget = args.images or base["train"]["images"]
    root = Path(args.root)
    scoring = prepared_project(base, root, SCORED_AT, args.max_train)
    native = prepared_project(base, root, 28, args.max_train)
    data = {32: scoring, 28: native}

    # Equal train time: the 28x28 budget is the 32x32 one times the measured speed ratio, timed
    # in turns (32, 28, 32, 28) so that drifting machine load falls on both sizes alike.
    rates = {32: [], 28: []}
    probes = root / "runs" / f"probes-{args.first_seed}"
    for turn, size in enumerate((32, 28, 32, 28)):
        work = probes / f"{size}-{turn}"
        rates[size].append(images_per_second(base, data[size], work, size, args.probe_steps, args.max_train))
    ratio = statistics.fmean(rates[28]) / statistics.fmean(rates[32])
    batch = base["train"]["batch_size"]
    budgets = {32: budget, 28: round(budget * ratio / batch) * batch}
    print(f"28x28 trains {ratio:.3f}x the images per second of 32x32: budgets {budgets}", flush=True)

    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for size in (32, 28):
            work = root / "runs" / f"{size}-{seed}"
            seconds = train_seconds(base, data[size], work, size, seed, budgets[size], args.max_train)
            row = {
                "size": size,
                "seed": seed,
                "images": budgets[size],
                "speed_ratio": ratio,
                "train_seconds": seconds,
                "fid_domain_at_32": fid_at_scoring_size(Layout(work).generator, scoring, args.samples, seed),
            }
            rows.append(row)
            with open(args.jsonl, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"{size}x{size} seed {seed}: fid_domain {row['fid_domain_at_32']:.3f} in {seconds:.0f} s",
                flush=True,
            )

    print("\n| trained at | seeds | images | fid_domain (32x32 evaluator) | train s |")
    print("|---|---|---|---|---|")
    for size in (32, 28):
        mine = [r for r in rows if r["size"] == size]
        fids = [r["fid_domain_at_32"] for r in mine]
        sd = statistics.stdev(fids) if len(fids) > 1 else 0.0
        seconds = statistics.fmean(r["train_seconds"] for r in mine)
        print(
            f"| {size}x{size} | {len(mine)} | {budgets[size]} | {statistics.fmean(fids):.3f} ± {sd:.2g} | {seconds:.0f} |"
        )


if __name__ == "__main__":
    main()
