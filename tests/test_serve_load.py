"""Bounded concurrent load on loopback: zero errors, and concurrent requests really merged into one
model run. How much faster that is, is a timing claim: benchmarks/serve_load.py measures it (docs/serving.md)."""

import contextlib
import re

import httpx
import pytest

from ganops.serve.loadgen import run_load
from serve_helpers import export_tiny, serve_process

REQUESTS, CLIENTS, ROUNDS = 2000, 16, 4


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(export_tiny(tmp_path_factory.mktemp("serve-load")).onnx)


def _mean_requests_per_batch(base: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    total = float(re.search(r"^ganops_batch_requests_sum (\S+)$", text, re.M).group(1))
    count = float(re.search(r"^ganops_batch_requests_count (\S+)$", text, re.M).group(1))
    return total / count


def test_micro_batching_under_concurrent_load(model, capsys):
    with contextlib.ExitStack() as stack:
        servers = {
            label: stack.enter_context(serve_process(model, flag, "--batch-delay-ms", "2", "--threads", "1"))
            for label, flag in (("one at a time", "--no-batching"), ("micro-batched", "--batching"))
        }
        for base in servers.values():
            run_load(base, requests=200, clients=CLIENTS)  # warm-up: connections, ORT arenas
        # Alternating rounds: load from other processes on a shared machine hits both servers alike.
        runs = {label: [] for label in servers}
        for _ in range(ROUNDS):
            for label, base in servers.items():
                runs[label].append(
                    run_load(base, requests=REQUESTS // ROUNDS, clients=CLIENTS, max_seconds=120)
                )
        merged = {label: _mean_requests_per_batch(base) for label, base in servers.items()}

    totals = {}
    for label, results in runs.items():
        done, errors = sum(r.requests for r in results), sum(r.errors for r in results)
        assert done == REQUESTS and errors == 0, results
        totals[label] = done / sum(r.seconds for r in results)
    gain = totals["micro-batched"] / totals["one at a time"]
    with capsys.disabled():
        print(
            f"\nload: {REQUESTS} requests (n=1) from {CLIENTS} clients on 127.0.0.1 per server, shared 2-core machine"
        )
        for label, results in runs.items():
            p50 = sorted(r.p50_ms for r in results)[len(results) // 2]
            p99 = max(r.p99_ms for r in results)
            print(
                f"  {label:14s} {totals[label]:7.1f} req/s  p50 {p50:6.2f} ms  p99 (worst round) {p99:6.2f} ms  "
                f"{merged[label]:5.2f} requests per ONNX run"
            )
        print(f"  micro-batching throughput gain: {gain:.2f}x")
    assert merged["one at a time"] == 1.0  # the baseline really ran one request per model call
    assert merged["micro-batched"] > 1.5  # concurrent requests really were merged
