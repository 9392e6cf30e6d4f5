"""How far the fp16 variant's images are from the fp32 images, in 8-bit grey levels, per architecture.

Trains each configuration for a few hundred steps on Fashion-MNIST with tiny settings (the real
prepare and train stages), exports it with the real export stage, and prints the fp16 parity that
export measured: the largest and the mean difference in grey levels (0..255, after mapping [-1, 1]
to 8 bits as the server does) and the max abs difference on the [-1, 1] output. Then it scales
the last layer of the trained generators up (pre-tanh activations x factor), which reproduces the
large activations of a long-trained model, and measures again. The bounds in
ganops.export.fp16 (MAX_GREY_DIFF, MEAN_GREY_DIFF) were chosen from this table (docs/export.md).

    python benchmarks/fp16_parity.py                        # the table in docs/export.md
    python benchmarks/fp16_parity.py --steps 100 --only dcgan-32-1
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ganops.config import parse_params
from ganops.errors import ExportError
from ganops.export.fp16 import convert_fp16, fp16_parity
from ganops.models.io import load_generator, save_generator
from ganops.stages import Layout
from ganops.stages import export as export_stage
from ganops.stages import prepare as prepare_stage
from ganops.stages import train as train_stage

# name: (arch, conditional, channels, image size); every architecture, both sizes and channel counts.
CONFIGS = {
    "mlp-32-1": ("mlp", False, 1, 32),
    "mlp-64-3": ("mlp", False, 3, 64),
    "dcgan-32-1": ("dcgan", False, 1, 32),
    "dcgan-64-3-cond": ("dcgan", True, 3, 64),
    "resnet-32-1": ("resnet", False, 1, 32),
    "resnet-32-3-cond": ("resnet", True, 3, 32),
    "resnet-64-1": ("resnet", False, 1, 64),
}
FACTORS = (1, 4, 16, 64)  # last-layer scale: 1 is the trained model itself


def amplify_last_layer(G: torch.nn.Module, factor: float) -> None:
    """Multiply the weights and bias of the layer that feeds tanh: pre-tanh activations x factor."""
    last = [
        m for m in G.modules() if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, torch.nn.ConvTranspose2d))
    ]
    with torch.no_grad():
        last[-1].weight.mul_(factor)
        if last[-1].bias is not None:
            last[-1].bias.mul_(factor)


def params_for(data_root: Path, arch: str, conditional: bool, channels: int, size: int, steps: int):
    raw = {
        "seed": 0,
        "data": {
            "source": "fashion-mnist",
            "root": str(data_root),
            "image_size": size,
            "channels": channels,
            "max_train": 4096,
            "max_test": 512,
        },
        "model": {"arch": arch, "latent_dim": 32, "g_width": 16, "d_width": 16, "conditional": conditional},
        "train": {
            "device": "cpu",
            "epochs": 100,
            "max_steps": steps,
            "batch_size": 32,
            "eval_every": 0,
            "checkpoint_every": 10_000,
            "grid_size": 16,
        },
        "export": {"parity_samples": 256},
    }
    return parse_params(raw, origin=f"{arch} {size}px x{channels}")


def measure(layout: Layout, params, latents: np.ndarray) -> dict:
    """The export stage's verdict, and the grey-level distances measured whatever the verdict."""
    info = export_stage.run(params, layout)
    row = {"export": "written" if info["fp16"]["written"] else f"skipped: {info['fp16']['reason']}"}
    probe = layout.root / "probe.fp16.onnx"
    try:
        convert_fp16(layout.onnx, probe)
        grey = fp16_parity(layout.onnx, probe, latents)
    except ExportError as err:
        return {**row, "error": str(err)}
    return {
        **row,
        "max_grey_diff": grey.max_grey_diff,
        "mean_grey_diff": grey.mean_grey_diff,
        "max_abs_diff": grey.max_abs_diff,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--steps", type=int, default=300, help="G steps of training per configuration")
    parser.add_argument("--only", nargs="*", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--factors", nargs="*", type=float, default=list(FACTORS))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(1)

    rows = []
    with tempfile.TemporaryDirectory(prefix="ganops-fp16-") as tmp:
        for name in args.only:
            arch, conditional, channels, size = CONFIGS[name]
            layout = Layout(Path(tmp) / name)
            params = params_for(Path(args.data_root), arch, conditional, channels, size, args.steps)
            began = time.perf_counter()
            prepare_stage.run(params, layout)
            train_stage.run(params, layout)
            trained = time.perf_counter() - began
            _, spec = load_generator(layout.generator)
            for factor in args.factors:
                amplified = Layout(Path(tmp) / f"{name}-x{factor:g}")
                amplified.generator.parent.mkdir(parents=True, exist_ok=True)
                H, _ = load_generator(layout.generator)
                amplify_last_layer(H, factor)
                save_generator(amplified.generator, H, spec, step=args.steps)
                latents = np.random.default_rng(1).standard_normal((256, spec.latent_dim), dtype=np.float32)
                row = {
                    "config": name,
                    "factor": factor,
                    "steps": args.steps,
                    **measure(amplified, params, latents),
                }
                rows.append(row)
                print(
                    json.dumps(row),
                    f"(trained in {trained:.0f} s)" if factor == args.factors[0] else "",
                    flush=True,
                )
                shutil.rmtree(amplified.root, ignore_errors=True)
            shutil.rmtree(layout.root, ignore_errors=True)

    print(
        "\n| configuration | last layer x | max grey diff | mean grey diff | max abs diff [-1,1] | export |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = (
            f"{r['max_grey_diff']} | {r['mean_grey_diff']:.4f} | {r['max_abs_diff']:.2g}"
            if "error" not in r
            else f"| | {r['error']}"
        )
        print(f"| {r['config']} | {r['factor']:g} | {cells} | {r['export']} |")


if __name__ == "__main__":
    main()
