"""Serving under stress: clients that leave, requests past their deadline, a server about to stop."""

from __future__ import annotations

import asyncio
import threading

import httpx
import numpy as np

from ganops.serve.app import ServeSettings, create_app
from ganops.serve.batcher import MicroBatcher
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
