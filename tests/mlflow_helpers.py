"""A real `mlflow server` process on loopback for the registry tests."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from serve_helpers import free_port, stop


@contextlib.contextmanager
def mlflow_server(folder: Path, backend_uri: str, workers: int = 1, timeout_s: float = 120) -> Iterator[str]:
    """``mlflow server`` on ``backend_uri`` with a proxied artifact folder; yields its URL once healthy."""
    port, log = free_port(), folder / "server.log"
    with open(log, "w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
            + ["--backend-store-uri", backend_uri, "--artifacts-destination", str(folder / "artifacts")]
            + ["--workers", str(workers), "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}"],
            cwd=folder,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(OSError):
                if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                    break
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"mlflow server on {backend_uri} did not come up: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        stop(process, timeout=30)
