"""Shared pieces of the serving tests: a tiny exported generator and a real uvicorn server on loopback."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import torch

from ganops.config import parse_params
from ganops.models import ArchSpec, build_generator
from ganops.models.io import save_generator
from ganops.stages import Layout
from ganops.stages.export import run as export

SPEC = ArchSpec(arch="dcgan", latent_dim=8, image_size=16, channels=1, g_width=8, d_width=8)


def export_tiny(root: Path) -> Layout:
    """models/generator.pt with non-trivial BatchNorm statistics, exported by the real export stage."""
    torch.manual_seed(0)
    G = build_generator(SPEC)
    with (
        torch.no_grad()
    ):  # untrained DCGAN init gives near-constant gray; wider weights give visible patterns
        for module in G.modules():
            if isinstance(module, torch.nn.ConvTranspose2d):
                module.weight.normal_(0.0, 0.3)
    G.train()
    with torch.no_grad():
        G(torch.randn(32, SPEC.latent_dim))
    layout = Layout(root)
    save_generator(layout.generator, G.eval(), SPEC, step=1, note="serve-test")
    export(parse_params({"export": {"parity_samples": 8}}), layout)
    return layout


def stop(process: subprocess.Popen, timeout: float) -> None:
    """Terminate a server process, killing it if it has not exited within ``timeout`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, timeout: float = 60.0, process: subprocess.Popen | None = None, log=None) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"server exited with {process.returncode}: {log.read()[-2000:]}")
        with contextlib.suppress(httpx.TransportError):
            response = httpx.get(f"{base}/readyz", timeout=2)
            if response.status_code == 200:
                return response.json()
        time.sleep(0.1)
    raise TimeoutError(f"{base} was not ready in {timeout} s")


@contextlib.contextmanager
def uvicorn_thread(app) -> Iterator[str]:
    """Run ``app`` under a real uvicorn server on a free loopback port, in a thread of this process."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextlib.contextmanager
def serve_process(model: str, *args: str, cwd: Path | None = None) -> Iterator[str]:
    """``ganops serve MODEL`` as a separate process (what a user runs); yields its base URL once ready."""
    port = free_port()
    log = tempfile.TemporaryFile("w+")  # a file, not a pipe: a full pipe would block the server
    process = subprocess.Popen(
        [sys.executable, "-m", "ganops", "serve", model, "--port", str(port), *args],
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process=process, log=log)
        yield base
    finally:
        stop(process, timeout=15)
        log.close()


def restoration_spec(task: str, channels: int = 3) -> ArchSpec:
    """A tiny U-Net of ``task`` (superres: x2): size_multiple 4 (input pixels), random weights."""
    return ArchSpec(
        arch="unet",
        latent_dim=0,
        image_size=16,
        channels=channels,
        g_width=4,
        d_width=4,
        task=task,
        scale=2 if task == "superres" else 1,
        depth=2,
        patch_depth=2,
    )


def export_tiny_restoration(root: Path, task: str, channels: int = 3) -> Layout:
    """A randomly initialized tiny restoration generator, exported by the real export stage."""
    spec = restoration_spec(task, channels)
    torch.manual_seed(0)
    G = build_generator(spec).eval()
    layout = Layout(root)
    save_generator(layout.generator, G, spec, step=1, note="serve-test")
    export(parse_params({"export": {"parity_samples": 2}}), layout)
    return layout
