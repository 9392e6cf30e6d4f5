"""The micro-batcher on its own: a client that gives up leaves the queue at once."""

from __future__ import annotations

import asyncio
import threading

import numpy as np

from ganops.serve.batcher import MicroBatcher


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
