"""EMA decays side by side on one training run: the average never feeds back into training, so one
run can carry several shadows and each is scored by the evaluate stage (same evaluator, same split).

    python benchmarks/ema_decay.py --project . --seeds 0 1 2 --decays 0.998 0.999 0.9995 0.9998

The project must hold data/prepared and models/evaluator.pt (``dvc repro evaluator``). Prints
fid_domain per seed and decay; the run uses params.yaml otherwise (the default budget).
"""

from __future__ import annotations

import argparse
import copy
import logging
import statistics
import sys
import tempfile
from pathlib import Path

import torch
import yaml
from torch import nn
from torch.optim.swa_utils import update_bn

from ganops.config import parse_params
from ganops.models.io import load_generator, save_generator
from ganops.stages import evaluate as evaluate_stage
from ganops.stages import train as train_stage
from ganops.training import loop
from ganops.training.ema import EMA

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import workspace  # noqa: E402 - benchmarks/ is not a package


def with_shadows(decays: list[float]) -> dict[float, EMA]:
    """Patch the loop's EMA so that it also keeps one extra average per decay; returns them."""
    extra: dict[float, EMA] = {}

    class Several(EMA):
        def __init__(self, model, decay):
            super().__init__(model, decay)
            extra.update({d: EMA(model, d) for d in decays})

        def update(self, model, step):
            super().update(model, step)
            for shadow in extra.values():
                shadow.update(model, step)

    loop.EMA = Several
    return extra


def recalibrate_batch_norm(G: nn.Module, latent_dim: int, seed: int, batches: int = 32) -> nn.Module:
    """A copy of ``G`` whose BatchNorm statistics are re-estimated for its own (averaged) weights.

    The EMA averages weights but copies the live model's BN statistics; SWA's ``update_bn`` re-estimates
    them as the plain mean over seeded batches of latents. Measured: worse than the copied statistics
    (docs/quality.md), so training does not do it; ``--recalibrate`` shows it.
    """
    generator = torch.Generator().manual_seed(seed)
    G = copy.deepcopy(G)
    update_bn([torch.randn(256, latent_dim, generator=generator) for _ in range(batches)], G)
    return G.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--project", default=".")
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--decays", nargs="*", type=float, default=[0.998, 0.999, 0.9995, 0.9998])
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument(
        "--recalibrate",
        action="store_true",
        help="also score each average with its BN statistics re-estimated",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    base = yaml.safe_load(Path(args.params).read_text())
    base["train"] |= {"eval_every": 0, "max_steps": args.max_steps}
    base["evaluate"] |= {"metrics": ["fid"]}
    shared = Path(args.project).resolve()
    results: dict[float | str, list[float]] = {}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory(prefix="ganops-ema-") as tmp:
            layout = workspace(shared, Path(tmp) / "work")
            params = parse_params({**base, "seed": seed}, origin=f"seed {seed}")
            shadows = with_shadows(args.decays)
            train_stage.run(params, layout)
            _, spec = load_generator(layout.generator)
            variants = {decay: ema.shadow for decay, ema in shadows.items()}
            if args.recalibrate:
                variants |= {
                    f"{decay} + BN recalibrated": recalibrate_batch_norm(ema.shadow, spec.latent_dim, seed)
                    for decay, ema in shadows.items()
                }
            for name, G in variants.items():
                save_generator(layout.generator, G, spec, step=0)
                fid = evaluate_stage.run(params, layout)["fid_domain"]
                results.setdefault(name, []).append(fid)
                print(f"seed {seed} ema_decay {name}: fid_domain {fid:.3f}", flush=True)
    print("\n| ema_decay | seeds | fid_domain (mean ± sd) | per seed |\n|---|---|---|---|")
    for decay, fids in results.items():
        sd = statistics.stdev(fids) if len(fids) > 1 else 0.0
        per = ", ".join(f"{f:.2f}" for f in fids)
        print(f"| {decay} | {len(fids)} | {statistics.fmean(fids):.2f} ± {sd:.2f} | {per} |")


if __name__ == "__main__":
    main()
