"""Is a label-free evaluator trustworthy? Two checks on Fashion-MNIST with its labels hidden.

(a) Known degradations of real images: FID of train images against the test split must rise
    monotonically with Gaussian noise (3 levels), Gaussian blur (3 levels) and dropping 5 then
    8 of the 10 classes (labels are used only to build those sets, never by the evaluators).
(b) Generator checkpoints of one training run (the real train loop, resumed step by step): a
    label-free evaluator's FID must rank them like the supervised evaluator's (Spearman >= 0.9).

Evaluators compared, all the same network with params.yaml's evaluator section: ``supervised``
(trained on the labels), the label-free objectives of ganops.metrics.selfsup (trained on the
images only), and ``untrained`` (random weights: the floor that training has to beat).
Every number is measured in this run.

    python benchmarks/evaluator_validation.py                        # the stage's training length
    python benchmarks/evaluator_validation.py --threads 1 --evaluator-images 38400 --reference 5000 \
        --count 2000 --samples 2000 --steps 250 500 750 1000 1500 2000 2500 3000
        # run 2 of docs/evaluator.md: 600 evaluator steps, 3,000 G steps, 690 s on 2 shared cores
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import yaml
from scipy.stats import spearmanr

from ganops.config import parse_params
from ganops.data.prepared import PreparedSplit, load_split, to_unit_range
from ganops.metrics.evaluator import SELF_SUPERVISED, DomainClassifier, EvaluatorSpec, train_evaluator
from ganops.metrics.features import DomainFeaturesAndLogits, extract
from ganops.metrics.fid import fid
from ganops.metrics.selfsup import METHODS, train_self_supervised
from ganops.models.io import load_generator
from ganops.runtime import Stream, seed_everything, stream
from ganops.stages import Layout
from ganops.stages import prepare as prepare_stage
from ganops.training.loop import TrainPaths, train

NOISE = (0.05, 0.1, 0.2)  # std of added Gaussian noise, as a share of the pixel range
BLUR = (0.5, 1.0, 1.5)  # std of the Gaussian blur kernel, in pixels
KEEP_CLASSES = ((0, 1, 2, 3, 4), (0, 1))  # 5 then 8 of the 10 classes dropped
CHECKPOINTS = (100, 200, 400, 700, 1000, 1500, 2000, 3000)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = (k / k.sum()).to(x)
    c = x.shape[1]
    x = F.pad(x, (radius, radius, radius, radius), mode="reflect")
    x = F.conv2d(x, k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(x, k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def degraded_sets(train: PreparedSplit, count: int, seed: int) -> dict[str, torch.Tensor]:
    """Float images in [-1, 1]: clean train images, then each degradation of them."""
    rng = np.random.default_rng(seed)
    pick = rng.permutation(len(train.images))[:count]
    clean = to_unit_range(torch.from_numpy(train.images[pick]))
    noise = torch.Generator().manual_seed(seed)
    sets = {"clean": clean}
    for level in NOISE:  # pixel range is 2 in [-1, 1]
        sets[f"noise {level}"] = (clean + 2 * level * torch.randn(clean.shape, generator=noise)).clamp(-1, 1)
    for sigma in BLUR:
        sets[f"blur {sigma}"] = gaussian_blur(clean, sigma)
    for keep in KEEP_CLASSES:
        inside = np.flatnonzero(np.isin(train.labels, keep))
        chosen = rng.permutation(inside)[:count]
        sets[f"drop {10 - len(keep)} classes"] = to_unit_range(torch.from_numpy(train.images[chosen]))
    return sets


def features(net: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    return extract(net, images.split(500), "cpu").features


def monotone(values: list[float]) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


def train_evaluators(params, train: PreparedSplit, test: PreparedSplit, seed: int, methods, images) -> dict:
    device = torch.device("cpu")
    if images is not None:  # one pass over the first ``images`` train images
        train = PreparedSplit(train.images[:images], train.labels[:images])
        params = params.model_copy(update={"epochs": 1, "min_steps": 0})
    hidden = lambda split: PreparedSplit(split.images, None)  # noqa: E731 (labels hidden)
    nets, info = {}, {}
    began = time.perf_counter()
    model, accuracy = train_evaluator(params, train, test, seed, device)
    nets["supervised"], info["supervised"] = (
        model,
        {
            "seconds": time.perf_counter() - began,
            "test_accuracy": accuracy,
        },
    )
    for method in methods:
        began = time.perf_counter()
        model, check = train_self_supervised(params, hidden(train), hidden(test), seed, device, method)
        nets[method], info[method] = model, {"seconds": time.perf_counter() - began, **check}
    seed_everything(seed)
    spec = EvaluatorSpec(train.images.shape[1], 0, params.width, params.feature_dim, SELF_SUPERVISED)
    nets["untrained"], info["untrained"] = DomainClassifier(spec).eval(), {"seconds": 0.0}
    for name, item in info.items():
        print(f"evaluator {name}: {json.dumps(item)}", flush=True)
    return {name: DomainFeaturesAndLogits(net) for name, net in nets.items()}, info


def table_a(nets: dict, reference: torch.Tensor, sets: dict[str, torch.Tensor]) -> dict:
    ref = {name: features(net, reference) for name, net in nets.items()}
    return {
        name: {label: fid(ref[name], features(net, images)) for label, images in sets.items()}
        for name, net in nets.items()
    }


def families(rows: dict[str, float]) -> dict[str, bool]:
    noise = [rows["clean"], *(rows[f"noise {v}"] for v in NOISE)]
    blur = [rows["clean"], *(rows[f"blur {v}"] for v in BLUR)]
    classes = [rows["clean"], *(rows[f"drop {10 - len(k)} classes"] for k in KEEP_CLASSES)]
    return {"noise": monotone(noise), "blur": monotone(blur), "classes": monotone(classes)}


def table_b(raw: dict, root: Path, nets: dict, reference: torch.Tensor, steps, samples: int) -> dict:
    """FID of the EMA generator after each of ``steps`` of one run (resumed from the previous)."""
    layout = Layout(root)
    ref = {name: features(net, reference) for name, net in nets.items()}
    paths = TrainPaths(
        prepared=layout.prepared,
        generator=layout.generator,
        checkpoints=layout.checkpoints,
        samples=layout.samples,
        history=layout.train_history,
    )
    fids: dict[str, list[float]] = {name: [] for name in nets}
    for step in steps:
        raw["train"].update(max_steps=step, checkpoint_every=step, eval_every=0)
        began = time.perf_counter()
        train(parse_params(raw), paths)
        G, spec = load_generator(layout.generator)
        z = torch.randn(samples, spec.latent_dim, generator=stream(raw["seed"], Stream.EVALUATE_Z))
        with torch.no_grad():
            fake = torch.cat([G(chunk) for chunk in z.split(500)])
        for name, net in nets.items():
            fids[name].append(fid(ref[name], features(net, fake)))
        row = ", ".join(f"{name} {values[-1]:.4g}" for name, values in fids.items())
        print(f"step {step} ({time.perf_counter() - began:.0f} s): {row}", flush=True)
    return fids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument(
        "--evaluator-images", type=int, default=None, help="train evaluators one pass over this many images"
    )
    parser.add_argument("--reference", type=int, default=10000, help="test images as the reference set")
    parser.add_argument("--methods", nargs="*", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--count", type=int, default=5000, help="images per degraded set")
    parser.add_argument("--steps", type=int, nargs="*", default=list(CHECKPOINTS), help="G checkpoints")
    parser.add_argument("--samples", type=int, default=5000, help="generated images per checkpoint")
    parser.add_argument("--max-train", type=int, default=None, help="a smaller train split (a quick try)")
    parser.add_argument(
        "--data-root", default=None, help="Fashion-MNIST's IDX files (default: Debian's, else data/raw)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (1 is ~4x faster on a contended machine)"
    )
    parser.add_argument("--json", default=None, help="also write every number to this file")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.threads:
        torch.set_num_threads(args.threads)
    began = time.perf_counter()

    raw = yaml.safe_load(Path(args.params).read_text())
    raw["data"] = {"source": "fashion-mnist", "root": args.data_root, "max_train": args.max_train}  # 32x32
    params = parse_params(raw)
    with tempfile.TemporaryDirectory(prefix="ganops-evaluator-validation-") as tmp:
        layout = Layout(Path(tmp))
        prepare_stage.run(params, layout)
        train_split, test_split = load_split(layout.prepared, "train"), load_split(layout.prepared, "test")
        nets, info = train_evaluators(
            params.evaluator, train_split, test_split, params.seed, args.methods, args.evaluator_images
        )
        reference = to_unit_range(torch.from_numpy(test_split.images[: args.reference]))

        a = table_a(nets, reference, degraded_sets(train_split, args.count, params.seed))
        labels = list(next(iter(a.values())))
        print("\n(a) FID against the test split of train images, clean or degraded (x: FID / clean FID)\n")
        print("| set | " + " | ".join(nets) + " |")
        print("|---" * (len(nets) + 1) + "|")
        for label in labels:
            cells = (f"{a[name][label]:.4g} (x{a[name][label] / a[name]['clean']:.0f})" for name in nets)
            print(f"| {label} | " + " | ".join(cells) + " |")
        checks = {name: families(rows) for name, rows in a.items()}
        for family in ("noise", "blur", "classes"):
            marks = " | ".join("yes" if checks[name][family] else "**no**" for name in nets)
            print(f"| monotone in {family} | {marks} |")

        b = table_b(raw, Path(tmp), nets, reference, args.steps, args.samples)
        rho = {name: float(spearmanr(b["supervised"], values).statistic) for name, values in b.items()}
        print(f"\n(b) FID of one training run's EMA generator ({args.samples} samples vs the test split)\n")
        print("| step | " + " | ".join(nets) + " |")
        print("|---" * (len(nets) + 1) + "|")
        for i, step in enumerate(args.steps):
            print(f"| {step} | " + " | ".join(f"{b[name][i]:.4g}" for name in nets) + " |")
        print("| Spearman vs supervised | " + " | ".join(f"{rho[name]:.3f}" for name in nets) + " |")
        print(f"\ntotal {time.perf_counter() - began:.0f} s")
    if args.json:
        record = {"args": vars(args), "evaluators": info, "a": a, "monotone": checks, "b": b, "spearman": rho}
        Path(args.json).write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
