"""Restoration served: seconds per photo in process (`ganops restore`'s code path) and through
`ganops serve`, side by side in one run.

    python benchmarks/serve_restoration.py [--superres MODEL] [--inpaint MODEL] [--translate MODEL] [--image PHOTO]
        [--size 256] [--tile-size 256] [--repeats 10] [--requests 20] [--clients 2] [--threads 2]

MODEL is an ONNX file or a registry URI (default models:/ganops-<task>@champion; run the restoration
experiments first, docs/restoration.md); a task given as "" is left out. PHOTO (default: the first
of data/raw/photos/, `make photos`) is cropped to SIZE x SIZE at its centre. Inpainting gets a seeded
mask of restore.inpaint's default coverage (the masks of training and the evalset); super-resolution
inputs with a side over TILE input pixels are tiled (an eighth of it shared), as the server tiles
them (its default: 256, so a 256x256 photo is one tile; --tile-size 128 makes it 9).

For each task: the median wall time of one restoration in this process (decode, pad, tiles, model,
blend, PNG: the CLI's path, ONNX Runtime on THREADS threads), then requests/s of a `ganops serve`
process on the same model and photo (base64 JSON, CLIENTS concurrent clients on 127.0.0.1, the same
threads) against the in-process rate. The issue's targets on 2 CPU cores: x4 of 256x256 in at most
1 s, inpainting 256x256 in at most 0.5 s, translation of 256x256 in at most 0.3 s, the server at least
80% of the in-process rate.
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from ganops.cards import card  # noqa: E402
from ganops.serve.contract import RestoreLimits  # noqa: E402
from ganops.serve.loadgen import run_load  # noqa: E402
from serve_helpers import serve_process  # noqa: E402  (the tests' launcher: free port, wait for /readyz)

ROUTES = {task: card(task).image_to_image.route for task in ("superres", "inpaint", "translate")}
TARGET_S = {"superres": 1.0, "inpaint": 0.5, "translate": 0.3}  # the issues', for 256x256 on 2 cores
TARGET_SERVER_SHARE = 0.8


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def png(pixels: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def photo_crop(path: Path, size: int) -> np.ndarray:
    """The centre SIZE x SIZE of the photo (scaled down first if a side is shorter), (H, W, 3) uint8."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        if min(image.size) < size:
            image = ImageOps.fit(image, (size, size))
        left, top = (image.width - size) // 2, (image.height - size) // 2
        return np.asarray(image.crop((left, top, left + size, top + size)), dtype=np.uint8)


def inpaint_mask(size: int) -> np.ndarray:
    """A mask of the training masks' kind (strokes and boxes), seeded, (H, W) uint8, 255 = hole."""
    import torch

    from ganops.config import InpaintParams
    from ganops.tasks.degrade import masks

    coverage = tuple(InpaintParams().coverage)
    mask = masks(1, size, size, coverage, torch.Generator().manual_seed(0))[0, 0]
    return (mask.numpy() * 255).astype(np.uint8)


def default_photo() -> Path:
    folder = REPO / "data/raw/photos"
    photos = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    if not photos:
        fail(f"no photo: {folder} is empty; run `make photos` or pass --image PHOTO")
    return photos[0]


def in_process(model: str, files: dict[str, bytes], limits, threads: int, repeats: int) -> tuple[float, str]:
    """Median seconds of one restoration by restore.py's code path, and the model's description."""
    from ganops.serve.restore import restore_upload
    from ganops.serve.session import GeneratorSession
    from ganops.serve.source import resolve

    session = GeneratorSession(resolve(model), "cpu", threads=threads)
    info = session.info
    args = (session.run, info, limits, files["image"], files.get("mask"))
    restore_upload(*args)  # warm-up: ORT's arenas and kernels for these shapes
    seconds = []
    for _ in range(repeats):
        began = time.perf_counter()
        restore_upload(*args)
        seconds.append(time.perf_counter() - began)
    return statistics.median(seconds), f"{info.task} x{info.scale}, trained at {info.trained_size[0]} px"


def served_rate(model: str, task: str, files: dict[str, bytes], args) -> tuple[float, int]:
    """Requests/s of a `ganops serve` process on the same photo, and how many requests failed."""
    body = {name: base64.b64encode(data).decode() for name, data in files.items()}
    overlap = str(args.tile_size // 8)
    flags = ("--threads", str(args.threads), "--tile-size", str(args.tile_size), "--tile-overlap", overlap)
    with serve_process(model, *flags, cwd=REPO) as base:
        options = {"route": ROUTES[task], "body": lambda i: body, "clients": args.clients}
        warm = run_load(base, requests=max(2, args.clients), **options)
        if warm.errors:
            fail(f"`ganops serve {model}` answered errors on warm-up: statuses {warm.statuses}")
        result = run_load(base, requests=args.requests, max_seconds=300, **options)
    return result.requests / result.seconds, result.errors


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--superres", default="models:/ganops-superres@champion")
    parser.add_argument("--inpaint", default="models:/ganops-inpaint@champion")
    parser.add_argument("--translate", default="models:/ganops-translate@champion")
    parser.add_argument("--image", type=Path, help="a photo (default: the first of data/raw/photos/)")
    parser.add_argument("--size", type=int, default=256, help="side of the square crop, input pixels")
    parser.add_argument(
        "--tile-size",
        type=int,
        default=RestoreLimits.tile_size,
        help="superres tile side, input pixels (the server's)",
    )
    parser.add_argument("--repeats", type=int, default=10, help="timed in-process runs per task")
    parser.add_argument("--requests", type=int, default=20, help="timed requests per server")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime threads, in process and served")
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{REPO / 'mlflow.db'}")
    limits = RestoreLimits(tile_size=args.tile_size, tile_overlap=args.tile_size // 8)
    photo = args.image or default_photo()
    pixels = photo_crop(photo, args.size)
    models = {
        task: model
        for task, model in (
            ("superres", args.superres),
            ("inpaint", args.inpaint),
            ("translate", args.translate),
        )
        if model
    }
    rows = []
    for task, model in models.items():
        files = {"image": png(pixels)}
        if task == "inpaint":
            files["mask"] = png(inpaint_mask(args.size))
        try:
            seconds, described = in_process(model, files, limits, args.threads, args.repeats)
        except Exception as err:
            fail(f"{task}: {model} did not restore in process: {type(err).__name__}: {err}")
        rps, errors = served_rate(model, task, files, args)
        rows.append((task, described, seconds, rps, errors))

    print(
        f"\n{photo.name}, centre {args.size}x{args.size}; ONNX Runtime on {args.threads} threads (CPU), "
        f"superres tiles of {args.tile_size} px; {args.repeats} in-process runs, {args.requests} requests "
        f"from {args.clients} clients"
    )
    print(
        "\n| task | model | in process, s (target) | served req/s | in-process req/s | served share | errors |"
    )
    print("|---|---|---|---|---|---|---|")
    for task, described, seconds, rps, errors in rows:
        share = rps * seconds
        print(
            f"| {task} | {described} | {seconds:.3f} (<= {TARGET_S[task]}) | {rps:.2f} | {1 / seconds:.2f} "
            f"| {share:.0%} (>= {TARGET_SERVER_SHARE:.0%}) | {errors} |"
        )


if __name__ == "__main__":
    main()
