"""Generator inference: ONNX Runtime against torch eager, side by side in one run.

    python benchmarks/inference.py [models/generator.pt] [--threads N] [--iters 200]

Latency at batch 1 and throughput at batch 64 and 1024. Torch runs the generator eagerly under
``inference_mode``; ONNX Runtime runs the file the export stage writes (graph optimizations on:
ORT_ENABLE_ALL), with the same number of threads. On a GPU: torch CUDA fp32 and ORT's CUDA
provider in fp32 and fp16 (the export's generator.fp16.onnx), after checking that ORT really got CUDA.
Without a trained generator.pt the export stage runs on freshly initialized weights of params'
model section (speed does not depend on the weight values). Calls alternate between runtimes in
blocks; each figure is the median per call.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ganops.config import load_params
from ganops.models import ArchSpec, build_generator
from ganops.models.io import load_generator, save_generator
from ganops.stages import Layout
from ganops.stages.export import run as export

REPO = Path(__file__).resolve().parents[1]
BATCHES = (1, 64, 1024)


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def exported(model: Path | None, params_path: Path, root: Path) -> Layout:
    """A layout holding generator.pt and its ONNX export (the real export stage)."""
    params = load_params(params_path)
    layout = Layout(root)
    if model is not None:
        G, spec = load_generator(model)
    else:
        m = params.model
        spec = ArchSpec(
            arch=m.arch,
            latent_dim=m.latent_dim,
            image_size=params.data.image_size,
            channels=1,
            g_width=m.g_width,
            d_width=m.d_width,
        )
        torch.manual_seed(0)
        G = build_generator(spec).eval()
        print(f"no generator given: exporting untrained {spec.arch} from {params_path}", flush=True)
    save_generator(layout.generator, G, spec, step=0, note="benchmark")
    export(params, layout)
    return layout


def ort_session(path: Path, provider: str, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=[provider])
    if session.get_providers()[0] != provider:  # onnxruntime falls back silently
        raise RuntimeError(f"asked for {provider}, got {session.get_providers()}")
    return session


def timed(fn: Callable[[], object], iters: int, sync: Callable[[], None]) -> list[float]:
    out = []
    for _ in range(iters):
        began = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - began)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", nargs="?", help="generator.pt (default: models/generator.pt if present)")
    parser.add_argument("--params", default=str(REPO / "params.yaml"))
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--iters", type=int, default=200, help="calls per block at batch 1 (fewer at larger)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    torch.set_num_threads(args.threads)
    model = Path(args.model) if args.model else (REPO / "models" / "generator.pt")
    root = Path(tempfile.mkdtemp(prefix="ganops-infer-"))
    try:
        layout = exported(model if model.is_file() else None, Path(args.params), root)
    except Exception as err:
        fail(f"set-up failed: exporting the generator ({type(err).__name__}: {err})")
    G, spec = load_generator(layout.generator)
    rng = np.random.default_rng(0)

    runtimes: dict[str, tuple[Callable[[np.ndarray], object], Callable[[], None]]] = {}
    runtimes["torch eager, inference_mode (cpu)"] = (_torch_fn(G, torch.device("cpu")), lambda: None)
    try:
        cpu = ort_session(layout.onnx, "CPUExecutionProvider", args.threads)
        runtimes["ONNX Runtime, CPU provider"] = (lambda z: cpu.run(None, {"z": z}), lambda: None)
    except Exception as err:
        fail(f"candidate ONNX Runtime (CPU) failed: {type(err).__name__}: {err}")
    if torch.cuda.is_available():
        sync = torch.cuda.synchronize
        runtimes["torch eager, inference_mode (cuda fp32)"] = (_torch_fn(G, torch.device("cuda")), sync)
        for name, path in (("fp32", layout.onnx), ("fp16", layout.fp16_onnx)):
            if not path.exists():  # export skips the optional fp16 variant when it falls short
                print(f"no {name} file ({path}); see the fp16 entry of {layout.onnx_sidecar}")
                continue
            try:
                s = ort_session(path, "CUDAExecutionProvider", args.threads)
            except Exception as err:
                fail(f"candidate ONNX Runtime CUDA {name} failed: {type(err).__name__}: {err}")
            runtimes[f"ONNX Runtime, CUDA provider {name}"] = (lambda z, s=s: s.run(None, {"z": z}), sync)

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(
        f"torch {torch.__version__}, {args.threads} threads, {device}, {spec.arch} {spec.image_size}px, latent {spec.latent_dim}"
    )
    times: dict[tuple[str, int], list[float]] = {}
    for batch in BATCHES:
        z = rng.standard_normal((batch, spec.latent_dim), dtype=np.float32)
        iters = max(5, args.iters * 8 // (8 + batch))
        for name, (fn, sync) in runtimes.items():
            try:
                timed(lambda fn=fn, z=z: fn(z), 3, sync)  # warm-up: allocations, kernel choices
            except Exception as err:
                which = "baseline" if name.startswith("torch eager, inference_mode (cpu)") else "candidate"
                fail(f"{which} {name} failed at batch {batch}: {type(err).__name__}: {err}")
        for _ in range(args.rounds):
            for name, (fn, sync) in runtimes.items():
                times.setdefault((name, batch), []).extend(timed(lambda fn=fn, z=z: fn(z), iters, sync))

    print(
        "\n| batch | runtime | ms per call (median) | images/s | vs torch eager (same device) |\n|---|---|---|---|---|"
    )
    for (name, batch), values in times.items():
        ms = statistics.median(values) * 1e3
        ref_name = (
            "torch eager, inference_mode (cuda fp32)"
            if "CUDA" in name or "cuda" in name
            else "torch eager, inference_mode (cpu)"
        )
        ref = statistics.median(times[(ref_name, batch)]) * 1e3
        print(f"| {batch} | {name} | {ms:.3f} | {batch / ms * 1e3:,.0f} | {ref / ms:.2f}x |")


def _torch_fn(G: torch.nn.Module, device: torch.device) -> Callable[[np.ndarray], object]:
    G = G.to(device).eval()

    def run(z: np.ndarray):
        with torch.inference_mode():
            return G(torch.from_numpy(z).to(device)).cpu()

    return run


if __name__ == "__main__":
    main()
