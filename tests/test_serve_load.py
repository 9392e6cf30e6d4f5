"""Bounded concurrent load on loopback: zero errors, and micro-batching must beat one-at-a-time."""

import re

import httpx
import pytest

from ganops.serve.loadgen import run_load
from serve_helpers import export_tiny, serve_process

REQUESTS, CLIENTS = 2000, 16


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return str(export_tiny(tmp_path_factory.mktemp("serve-load")).onnx)


def _mean_requests_per_batch(base: str) -> float:
    text = httpx.get(f"{base}/metrics").text
    total = float(re.search(r"^ganops_batch_requests_sum (\S+)$", text, re.M).group(1))
    count = float(re.search(r"^ganops_batch_requests_count (\S+)$", text, re.M).group(1))
    return total / count


def test_micro_batching_under_concurrent_load(model, capsys):
    results = {}
    for label, flag in (("one at a time", "--no-batching"), ("micro-batched", "--batching")):
        with serve_process(model, flag, "--batch-delay-ms", "2", "--threads", "1") as base:
            run_load(base, requests=200, clients=CLIENTS)  # warm-up: connections, arenas
            result = run_load(base, requests=REQUESTS, clients=CLIENTS, max_seconds=120)
            merged = _mean_requests_per_batch(base)
        assert result.requests == REQUESTS and result.errors == 0, result
        results[label] = (result, merged)
    single, batched = results["one at a time"][0], results["micro-batched"][0]
    gain = batched.rps / single.rps
    with capsys.disabled():
        print(f"\nload: {REQUESTS} requests (n=1) from {CLIENTS} clients on 127.0.0.1, shared 2-core machine")
        for label, (r, merged) in results.items():
            print(
                f"  {label:14s} {r.rps:7.1f} req/s  p50 {r.p50_ms:6.2f} ms  p99 {r.p99_ms:6.2f} ms  "
                f"{merged:5.2f} requests per ONNX run"
            )
        print(f"  micro-batching throughput gain: {gain:.2f}x")
    assert results["one at a time"][1] == 1.0  # the baseline really ran one request per model call
    assert results["micro-batched"][1] > 1.5  # concurrent requests really were merged
    assert gain > 1.0, f"micro-batching gave {gain:.2f}x"
