"""Dynamic micro-batching: concurrent requests are gathered for a few ms and run as one ONNX batch.

Each request brings ``n`` rows: latents, or images of one size. The worker takes the oldest request,
waits up to ``max_delay_ms`` for more (less if ``max_batch`` rows arrive sooner), concatenates those
whose rows have the oldest one's shape (images of another size wait for a later run), runs
the model once in a worker thread (ONNX Runtime releases the GIL, so the event loop keeps
accepting requests meanwhile) and hands each request its slice back. With ``enabled=False``
every request runs alone, one at a time: the baseline the load test compares against.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

RunFn = Callable[[np.ndarray], np.ndarray]
ObserveFn = Callable[[int, int, float], None]  # rows, requests, seconds of one model run


class Overloaded(Exception):
    """More rows are waiting than the server accepts; the client should retry later."""


@dataclass
class _Job:
    inputs: np.ndarray
    future: asyncio.Future
    arrived: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    def __init__(
        self,
        run: RunFn,
        max_batch: int = 256,
        max_delay_ms: float = 2.0,
        enabled: bool = True,
        max_pending_rows: int = 16_384,
        observe: ObserveFn | None = None,
    ) -> None:
        self._run = run
        self.max_batch, self.max_delay = max_batch, max_delay_ms / 1000.0
        self.enabled, self.max_pending_rows = enabled, max_pending_rows
        self._observe = observe or (lambda rows, requests, seconds: None)
        self._pending: collections.deque[_Job] = collections.deque()
        self._pending_rows = 0
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnx")
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._loop(), name="micro-batcher")

    async def stop(self) -> None:
        if self._worker:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        while self._pending:
            job = self._pending.popleft()
            if not job.future.done():
                job.future.set_exception(Overloaded("server is shutting down"))
        self._executor.shutdown(wait=True)

    async def submit(self, inputs: np.ndarray) -> np.ndarray:
        if self._pending_rows + len(inputs) > self.max_pending_rows:
            raise Overloaded(f"{self._pending_rows} rows are already queued (limit {self.max_pending_rows})")
        job = _Job(inputs, asyncio.get_running_loop().create_future())
        self._pending.append(job)
        self._pending_rows += len(inputs)
        self._arrived.set()
        if self._pending_rows >= self.max_batch:
            self._full.set()
        try:
            return await job.future
        except asyncio.CancelledError:
            self._forget(job)
            raise

    def _forget(self, job: _Job) -> None:
        """A client that gave up: its rows leave the queue now, not when the worker reaches them."""
        try:
            self._pending.remove(job)
        except ValueError:
            return  # the worker has taken it already; the result is dropped
        self._pending_rows -= len(job.inputs)
        if self._pending_rows < self.max_batch:
            self._full.clear()

    @property
    def pending_rows(self) -> int:
        return self._pending_rows

    def _take(self) -> list[_Job]:
        """The oldest jobs that fit in max_batch rows (always at least one)."""
        jobs = [self._pending.popleft()]
        rows = len(jobs[0].inputs)
        shape = jobs[0].inputs.shape[1:]
        later = collections.deque()  # rows of another shape cannot share this run
        while self.enabled and self._pending and rows + len(self._pending[0].inputs) <= self.max_batch:
            job = self._pending.popleft()
            if job.inputs.shape[1:] != shape:
                later.append(job)
                continue
            jobs.append(job)
            rows += len(job.inputs)
        self._pending.extendleft(reversed(later))
        self._pending_rows -= rows
        if self._pending_rows < self.max_batch:
            self._full.clear()
        return jobs

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                self._arrived.clear()
                await self._arrived.wait()
            if self.enabled and self.max_delay > 0 and self._pending_rows < self.max_batch:
                # Wait from the oldest request's arrival, so a request never waits more than max_delay.
                remaining = self._pending[0].arrived + self.max_delay - time.perf_counter()
                if remaining > 0:
                    try:
                        await asyncio.wait_for(self._full.wait(), remaining)
                    except TimeoutError:
                        pass
            jobs = self._take()
            jobs = [j for j in jobs if not j.future.done()]  # a client that gave up is skipped
            if not jobs:
                continue
            inputs = np.concatenate([j.inputs for j in jobs]) if len(jobs) > 1 else jobs[0].inputs
            began = time.perf_counter()
            try:
                images = await loop.run_in_executor(self._executor, self._run, inputs)
            except Exception as err:  # noqa: BLE001 - every waiting request gets the failure
                log.exception("model run failed for a batch of %d rows", len(inputs))
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(err)
                continue
            self._observe(len(inputs), len(jobs), time.perf_counter() - began)
            start = 0
            for job in jobs:
                stop = start + len(job.inputs)
                if not job.future.done():
                    job.future.set_result(images[start:stop])
                start = stop
