"""Serving under stress: clients that leave, requests past their deadline, a server about to stop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time

import httpx
import numpy as np

from ganops.serve.app import ServeSettings, create_app
from ganops.serve.batcher import MicroBatcher
from ganops.serve.loadgen import run_load
from ganops.serve.session import GeneratorSession
from ganops.serve.source import resolve
from serve_helpers import export_tiny, uvicorn_thread


def test_a_cancelled_request_frees_its_queued_rows():
    release = threading.Event()

    def slow_model(latents: np.ndarray) -> np.ndarray:
        release.wait(10)
        return latents

    async def scenario() -> tuple[int, int, np.ndarray]:
        batcher = MicroBatcher(slow_model, max_batch=4, max_delay_ms=0)
        batcher.start()
        running = asyncio.ensure_future(batcher.submit(np.zeros((4, 2), np.float32)))
        await asyncio.sleep(0.05)  # the worker has taken it and is blocked in the model
        queued = asyncio.ensure_future(batcher.submit(np.ones((3, 2), np.float32)))
        await asyncio.sleep(0.05)
        before = batcher.pending_rows
        queued.cancel()  # the client disconnected
        await asyncio.gather(queued, return_exceptions=True)
        after = batcher.pending_rows
        release.set()
        first = await running
        await batcher.stop()
        return before, after, first

    before, after, first = asyncio.run(scenario())
    assert (before, after) == (3, 0)
    assert first.shape == (4, 2)


def test_a_request_past_its_deadline_gets_504_and_a_drain_file_turns_readiness_off(tmp_path):
    layout = export_tiny(tmp_path / "model")
    session = GeneratorSession(resolve(str(layout.onnx)), "cpu")
    drain = tmp_path / "draining"
    # The oldest request waits 50 ms for company, longer than its 10 ms deadline.
    settings = ServeSettings(max_delay_ms=50, request_timeout_s=0.01, drain_file=str(drain))
    app = create_app(session, settings)
    with uvicorn_thread(app) as base:
        response = httpx.post(f"{base}/v1/generate", json={"n": 1, "seed": 0}, timeout=30)
        assert response.status_code == 504 and "not answered within" in response.json()["error"]
        assert app.state.batcher.pending_rows == 0  # its rows left the queue with it

        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
        drain.touch()
        response = httpx.get(f"{base}/readyz", timeout=5)
        assert response.status_code == 503 and "draining" in response.json()["error"]
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200  # alive, just not taking work


async def _misbehave(host: str, port: int, leaving: int, slow: int) -> None:
    """Clients that send a request and leave at once, and clients that trickle their body in."""
    body = json.dumps({"n": 16, "seed": 3, "format": "png"}).encode()
    head = (
        f"POST /v1/generate HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()

    async def leave() -> None:
        _, writer = await asyncio.open_connection(host, port)
        writer.write(head + body)
        await writer.drain()
        await asyncio.sleep(0.001)
        writer.close()

    async def trickle() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(head)
        for byte in body:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.02)
        await reader.read(64)  # then read a little of the answer and go
        writer.close()

    await asyncio.gather(*(leave() for _ in range(leaving)), *(trickle() for _ in range(slow)))


def test_load_with_slow_and_disconnecting_clients_costs_the_others_nothing(tmp_path):
    layout = export_tiny(tmp_path / "model")
    session = GeneratorSession(resolve(str(layout.onnx)), "cpu")
    app = create_app(session, ServeSettings(max_delay_ms=2))
    with uvicorn_thread(app) as base:
        host, port = base.removeprefix("http://").split(":")
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            polite = pool.submit(run_load, base, requests=400, clients=8, max_seconds=120)
            asyncio.run(_misbehave(host, int(port), leaving=40, slow=4))
            result = polite.result()
        assert result.requests == 400 and result.errors == 0, result
        deadline = time.monotonic() + 10
        while app.state.batcher.pending_rows and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.state.batcher.pending_rows == 0  # nothing of the clients that left stays queued
        assert httpx.get(f"{base}/readyz", timeout=5).status_code == 200
