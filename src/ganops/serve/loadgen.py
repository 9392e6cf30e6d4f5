"""A bounded load generator for a running server: N requests from C concurrent clients.

Used by the load test and ``benchmarks/serve_load.py``. It only talks to the URL it is given
(tests and benchmarks pass 127.0.0.1) and stops after ``requests`` requests or ``max_seconds``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class LoadResult:
    requests: int
    errors: int
    seconds: float
    rps: float
    images_per_s: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int]

    def to_dict(self) -> dict:
        return asdict(self)


async def _drive(
    url: str, bodies: list[dict], clients: int, max_seconds: float
) -> tuple[list[float], dict[int, int], float]:
    import aiohttp

    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = 0
    deadline = time.perf_counter() + max_seconds

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal next_index
        while next_index < len(bodies) and time.perf_counter() < deadline:
            body = bodies[next_index]
            next_index += 1
            began = time.perf_counter()
            try:
                async with session.post(url, json=body) as response:
                    await response.read()
                    status = response.status
            except aiohttp.ClientError:
                status = 0  # connection-level failure
            latencies.append(time.perf_counter() - began)
            statuses[status] = statuses.get(status, 0) + 1

    connector = aiohttp.TCPConnector(limit=clients)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        began = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        return latencies, statuses, time.perf_counter() - began


def run_load(
    base: str,
    requests: int = 2000,
    clients: int = 16,
    n: int = 1,
    fmt: str = "npy",
    max_seconds: float = 120.0,
    route: str = "/v1/generate",
    body: Callable[[int], dict] | None = None,
) -> LoadResult:
    """POST ``requests`` generate requests (seed = request index) from ``clients`` concurrent clients.

    ``body(i)`` replaces ganops' request body for other servers (e.g. MLflow's /invocations); images
    per second then still count ``n`` per request."""
    make = body or (lambda i: {"n": n, "seed": i, "format": fmt})
    bodies = [make(i) for i in range(requests)]
    latencies, statuses, seconds = asyncio.run(_drive(base + route, bodies, clients, max_seconds))
    done = len(latencies)
    ms = np.asarray(latencies) * 1000.0
    return LoadResult(
        requests=done,
        errors=sum(count for status, count in statuses.items() if status != 200),
        seconds=round(seconds, 3),
        rps=round(done / seconds, 1),
        images_per_s=round(done * n / seconds, 1),
        p50_ms=round(float(np.percentile(ms, 50)), 2) if done else float("nan"),
        p99_ms=round(float(np.percentile(ms, 99)), 2) if done else float("nan"),
        statuses=dict(sorted(statuses.items())),
    )
