"""``ganops serve``, ``ganops sample`` and ``ganops restore``. Heavy imports stay inside the commands
(``--help`` is fast)."""

from __future__ import annotations

from pathlib import Path

import typer

from ganops.cards import card
from ganops.clitools import user_errors
from ganops.serve.contract import RestoreLimits

ProviderOption = typer.Option(
    "auto", "--provider", help="auto (TensorRT > CUDA > CPU), tensorrt, cuda or cpu"
)
TrackingOption = typer.Option(
    None,
    "--tracking-uri",
    help="MLflow tracking URI for models:/ (default $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
)
# Restoration limits: the server and `ganops restore` take the same ones (serve/restore.py).
MaxPixelsOption = typer.Option(
    RestoreLimits.max_pixels, "--max-pixels", min=1, help="restoration: most pixels of an input image"
)
TileSizeOption = typer.Option(
    RestoreLimits.tile_size, "--tile-size", min=1, help="superres: inputs with a side over this are tiled"
)
TileOverlapOption = typer.Option(
    RestoreLimits.tile_overlap,
    "--tile-overlap",
    min=0,
    help="superres: input pixels neighbouring tiles blend",
)


def serve(
    model: str = typer.Argument(
        ...,
        help="an exported .onnx file or models:/NAME@ALIAS (e.g. models:/ganops-generator@champion, "
        "models:/ganops-inpaint@champion)",
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="interface to bind; 0.0.0.0 in a container"),
    port: int = typer.Option(8000, "--port", min=0, max=65535),
    provider: str = ProviderOption,
    threads: int = typer.Option(
        0, "--threads", min=0, help="CPU threads for ONNX Runtime; 0 = the cores this process may use"
    ),
    max_n: int = typer.Option(64, "--max-n", min=1, help="most images per request"),
    max_batch: int = typer.Option(
        256, "--max-batch", min=1, help="most images per ONNX run after micro-batching"
    ),
    batch_delay_ms: float = typer.Option(
        2.0, "--batch-delay-ms", min=0.0, help="how long a request may wait to be batched"
    ),
    batching: bool = typer.Option(True, "--batching/--no-batching", help="micro-batch concurrent requests"),
    tracking_uri: str | None = TrackingOption,
    access_log: bool = typer.Option(False, "--access-log", help="log every request (costs throughput)"),
    max_connections: int = typer.Option(
        512, "--max-connections", min=1, help="open connections beyond this get 503 at once (uvicorn)"
    ),
    request_timeout_s: float = typer.Option(
        30.0, "--request-timeout", min=0.1, help="seconds before a request gets 504 and leaves the queue"
    ),
    drain_file: str | None = typer.Option(
        None, "--drain-file", help="while this file exists /readyz answers 503 (set by a preStop hook)"
    ),
    graceful_s: int = typer.Option(
        20, "--graceful-timeout", min=0, help="seconds in-flight requests get to finish on SIGTERM"
    ),
    max_pixels: int = MaxPixelsOption,
    tile_size: int = TileSizeOption,
    tile_overlap: int = TileOverlapOption,
    max_upload_mb: float = typer.Option(
        32.0, "--max-upload-mb", min=0.001, help="restoration: largest request body (MiB)"
    ),
) -> None:
    """Serve the generator over HTTP: /v1/generate and /v1/interpolate for a sampler, /v1/inpaint,
    /v1/upscale or /v1/colorize for a restoration model; /healthz, /readyz, /metrics, demo at /."""
    import uvicorn

    from ganops.serve.app import ServeSettings, create_app
    from ganops.serve.session import GeneratorSession
    from ganops.serve.source import resolve

    with user_errors():
        limits = RestoreLimits(max_pixels=max_pixels, tile_size=tile_size, tile_overlap=tile_overlap)
        session = GeneratorSession(resolve(model, tracking_uri), provider, threads or None)
    settings = ServeSettings(
        max_n=max_n,
        max_steps=max_n,
        max_batch=max_batch,
        max_delay_ms=batch_delay_ms,
        batching=batching,
        request_timeout_s=request_timeout_s,
        drain_file=drain_file,
        max_upload_bytes=int(max_upload_mb * 2**20),
        restore=limits,
    )
    uvicorn.run(
        create_app(session, settings),
        host=host,
        port=port,
        access_log=access_log,
        log_level="info",
        limit_concurrency=max_connections,
        timeout_graceful_shutdown=graceful_s,
    )


def sample(
    model: str = typer.Argument(..., help="an exported .onnx file or models:/NAME@ALIAS"),
    seed: int = typer.Option(
        0, "--seed", min=0, max=2**32 - 1, help="same seed, same images as the server's"
    ),
    n: int = typer.Option(16, "--n", "-n", min=1, max=4096, help="number of images"),
    out: Path = typer.Option(
        Path("samples.png"), "--out", "-o", help=".png for a grid, .npy for the float32 array"
    ),
    label: int | None = typer.Option(None, "--class", min=0, help="class label (conditional models only)"),
    provider: str = ProviderOption,
    tracking_uri: str | None = TrackingOption,
) -> None:
    """Write n images for a seed, exactly as POST /v1/generate returns them on the same provider."""
    from ganops.errors import ServeError
    from ganops.files import atomic_path
    from ganops.serve import images
    from ganops.serve.latents import seed_latents, with_class
    from ganops.serve.session import GeneratorSession
    from ganops.serve.source import resolve

    with user_errors():
        if out.suffix not in (".png", ".npy"):
            raise ServeError(f"--out {out}: must end in .png (grid) or .npy (array)")
        session = GeneratorSession(resolve(model, tracking_uri), provider)
        info = session.info
        if card(info.task).image_to_image:
            raise ServeError(
                f"{model}: a {info.task} model samples nothing; use `ganops restore MODEL IMAGE`"
            )
        latents = seed_latents(seed, n, info.latent_dim)
        if label is not None:
            if not info.class_cdf:
                raise ServeError("--class: this model is unconditional; leave it out")
            try:
                latents = with_class(latents, label, list(info.class_cdf))
            except ValueError as err:
                raise ServeError(f"--class: {err}") from None
        result = session.run(latents)
    with atomic_path(out) as tmp:
        tmp.write_bytes(images.png_grid(result) if out.suffix == ".png" else images.npy_bytes(result))
    typer.echo(f"wrote {out}: {n} images for seed {seed} ({session.provider})")


def restore(
    model: str = typer.Argument(
        ..., help="an exported restoration .onnx file or models:/ganops-<task>@ALIAS"
    ),
    source: Path = typer.Argument(..., help="a PNG or JPEG file, or a folder of them", exists=True),
    mask: Path | None = typer.Option(
        None, "--mask", help="inpaint: the mask file (non-zero = hole), or a folder with a mask of each name"
    ),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="the PNG to write (a folder for a folder); default NAME-TASK.png beside it"
    ),
    provider: str = ProviderOption,
    tracking_uri: str | None = TrackingOption,
    max_pixels: int = MaxPixelsOption,
    tile_size: int = TileSizeOption,
    tile_overlap: int = TileOverlapOption,
) -> None:
    """Restore an image or a folder of images, byte for byte as the server's route answers them."""
    from ganops.serve.restore_files import restore_paths

    with user_errors():
        limits = RestoreLimits(max_pixels=max_pixels, tile_size=tile_size, tile_overlap=tile_overlap)
        restored = restore_paths(model, source, mask, out, limits, provider, tracking_uri)
    # After the progress bar, on stderr like errors: the PNGs are written, but may not be what was wanted.
    for warning in restored.warnings():
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(f"wrote {restored.written}")
