"""Training images/s: the ganops training step against the conventional eager loop, side by side.

    python benchmarks/train_throughput.py [--batch-sizes 16,64] [--steps 200] [--rounds 3] [--compile]

Baseline: the classic DCGAN example's loop (pytorch/examples dcgan/main.py) on the same networks and
batch: a torchvision-style dataset that turns each decoded uint8 image into a PIL image and runs
ToTensor + Normalize, a DataLoader (shuffle, --workers processes, default 0), plain fp32, for-loop Adam,
BCE on D(real), D(fake.detach()) and D(fake).
Candidate: ganops' own ``train()`` (the real loop: EMA, loss history, device-resident uint8 data),
with the fast paths its device gets by default, plus ablation rows. A candidate's time is
T(warm-up + steps) - T(warm-up) of two fresh runs, so set-up and compilation are left out.
Rows alternate within each round (shared machines hit all alike); each figure is the median.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ganops.config import load_params
from ganops.models import build_discriminator, build_generator
from ganops.runtime import pick_device
from ganops.stages import Layout
from ganops.stages.prepare import run as prepare
from ganops.tasks import build_task
from ganops.training import fast
from ganops.training.loop import TrainPaths, train

REPO = Path(__file__).resolve().parents[1]


class Failed(Exception):
    """A measured configuration could not run: which one and why."""


class DecodedImages(torch.utils.data.Dataset):
    """What torchvision's MNIST-family datasets do per item: uint8 array -> PIL image -> transform."""

    def __init__(self, images: np.ndarray) -> None:
        from torchvision import transforms

        self.images = images
        channels = images.shape[1]
        self.transform = transforms.Compose(
            [transforms.ToTensor(), transforms.Normalize((0.5,) * channels, (0.5,) * channels)]
        )

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        from PIL import Image

        image = self.images[i]
        pil = Image.fromarray(image[0] if image.shape[0] == 1 else image.transpose(1, 2, 0))
        return self.transform(pil)


def baseline(spec, images: np.ndarray, batch: int, warm: int, steps: int, workers: int, device) -> float:
    """images/s of the classic eager loop over ``steps`` steps after ``warm`` warm-up steps."""
    G, D = build_generator(spec).to(device), build_discriminator(spec).to(device)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    criterion = torch.nn.BCEWithLogitsLoss()
    loader = torch.utils.data.DataLoader(
        DecodedImages(images), batch_size=batch, shuffle=True, num_workers=workers, drop_last=True
    )
    ones, zeros = torch.ones(batch, device=device), torch.zeros(batch, device=device)
    done, began = 0, 0.0
    while True:
        for real in loader:
            if done == warm:
                if device.type == "cuda":
                    torch.cuda.synchronize()
                began = time.perf_counter()
            real = real.to(device)
            D.zero_grad()
            err_real = criterion(D(real).view(-1), ones)
            err_real.backward()
            fake = G(torch.randn(batch, spec.latent_dim, device=device))
            err_fake = criterion(D(fake.detach()).view(-1), zeros)
            err_fake.backward()
            opt_d.step()
            G.zero_grad()
            err_g = criterion(D(fake).view(-1), ones)
            err_g.backward()
            opt_g.step()
            (err_real + err_fake).item(), err_g.item()  # the example logs these every step
            done += 1
            if done == warm + steps:
                return steps * batch / (time.perf_counter() - began)


def candidate(params, prepared: Path, warm: int, steps: int, patches: dict[str, Callable]) -> float:
    """images/s of ganops' train() over ``steps`` steps: two fresh runs, T(warm + steps) - T(warm)."""
    seconds = []
    saved = {name: getattr(fast, name) for name in patches}
    try:
        for name, replacement in patches.items():
            setattr(fast, name, replacement)
        for total in (warm, warm + steps):
            with tempfile.TemporaryDirectory() as tmp:
                layout = Layout(Path(tmp))
                paths = TrainPaths(
                    prepared=prepared,
                    generator=layout.generator,
                    checkpoints=layout.checkpoints,
                    samples=layout.samples,
                    history=layout.train_history,
                )
                run = params.model_copy(
                    update={"train": params.train.model_copy(update={"max_steps": total})}
                )
                seconds.append(train(run, paths).seconds)
    finally:
        for name, original in saved.items():
            setattr(fast, name, original)
    return steps * params.train.batch_size / max(seconds[1] - seconds[0], 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--params", default=str(REPO / "params.yaml"), help="data and model sections")
    parser.add_argument("--batch-sizes", default="16,64")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="baseline DataLoader workers (the example's 2 were slower on 2 cores)",
    )
    parser.add_argument("--max-train", type=int, default=10_000, help="images prepared for the run")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--channels-last", action="store_true", help="add a channels_last row (default on CUDA only)"
    )
    parser.add_argument(
        "--compile", action="store_true", help="add a torch.compile row (slow to compile on CPU)"
    )
    parser.add_argument("--bf16", action="store_true", help="add a bf16 autocast row (default on CUDA only)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    base = load_params(args.params)
    base = base.model_copy(
        update={
            "data": base.data.model_copy(update={"max_train": args.max_train}),
            "train": base.train.model_copy(
                update={"device": args.device, "eval_every": 0, "checkpoint_every": 10**9, "grid_size": 4}
            ),
        }
    )
    workdir = Path(tempfile.mkdtemp(prefix="ganops-bench-"))
    try:
        prepare(base, Layout(workdir))
    except Exception as err:
        fail(f"set-up failed: preparing {base.data.source} ({err})")
    from ganops.data.prepared import load_split

    split = load_split(Layout(workdir).prepared, "train")
    device = pick_device(args.device)
    spec = build_task(base, device, torch.Generator()).arch_spec(split.images, split.labels)

    rows: list[tuple[str, Callable[[int], float]]] = [
        (
            f"baseline: eager loop, DataLoader ({args.workers} workers) over decoded images, fp32",
            lambda b: baseline(spec, split.images, b, args.warm, args.steps, args.workers, device),
        ),
        ("ganops train(): defaults for this device", lambda b: run_ganops(b, {})),
        (
            "ganops, ablation: for-loop Adam instead of fused",
            lambda b: run_ganops(
                b, {"adam": lambda p, lr, betas, d: torch.optim.Adam(p, lr=lr, betas=betas)}
            ),
        ),
    ]
    rows.append(
        (
            "ganops, ablation: D's weight gradients computed in the G step",
            lambda b: run_ganops(b, {"frozen": lambda module, enabled=True: contextlib.nullcontext()}),
        )
    )
    if args.channels_last:
        rows.append(
            (
                "ganops + channels_last (off by default on CPU)",
                lambda b: run_ganops(b, {"memory_format": lambda d: torch.channels_last}),
            )
        )
    if args.compile:
        rows.append(("ganops + torch.compile (train.compile: on)", lambda b: run_ganops(b, {}, compile="on")))
    if args.bf16:
        rows.append(
            (
                "ganops + bf16 autocast (train.mixed_precision: bf16)",
                lambda b: run_ganops(b, {}, precision="bf16"),
            )
        )

    def run_ganops(batch: int, patches: dict, compile: str = "off", precision: str = "auto") -> float:
        update = {"batch_size": batch, "compile": compile, "mixed_precision": precision}
        params = base.model_copy(update={"train": base.train.model_copy(update=update)})
        return candidate(params, Layout(workdir).prepared, args.warm, args.steps, patches)

    print(
        f"device: {device}{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.steps} timed steps after {args.warm}, "
        f"{args.rounds} rounds, model {spec.arch} {spec.image_size}px g{spec.g_width}/d{spec.d_width}",
        flush=True,
    )
    results: dict[tuple[str, int], list[float]] = {}
    for batch in (int(b) for b in args.batch_sizes.split(",")):
        for _ in range(args.rounds):
            for name, measure in rows:
                try:
                    results.setdefault((name, batch), []).append(measure(batch))
                    print(f"  batch {batch}: {name}: {results[(name, batch)][-1]:,.0f} images/s", flush=True)
                except Exception as err:
                    which = "baseline" if name.startswith("baseline") else f"candidate ({name})"
                    fail(f"{which} failed at batch {batch}: {type(err).__name__}: {err}")

    print("\n| batch | loop | images/s | vs baseline |\n|---|---|---|---|")
    for (name, batch), values in results.items():
        ips = statistics.median(values)
        ref = statistics.median(results[(rows[0][0], batch)])
        print(f"| {batch} | {name} | {ips:,.0f} | {ips / ref:.2f}x |")
    shutil.rmtree(workdir, ignore_errors=True)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
