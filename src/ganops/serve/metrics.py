"""Prometheus metrics of one server: requests, latency, batch sizes, errors.

Each app gets its own CollectorRegistry, so several apps in one process (tests) never share
or double-register counters.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "ganops_requests", "HTTP requests by route and status code", ["route", "status"], registry=r
        )
        self.latency = Histogram(
            "ganops_request_seconds", "HTTP request latency", ["route"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.errors = Counter(
            "ganops_errors",
            "Requests that failed, by route and kind (client, overload, server)",
            ["route", "kind"],
            registry=r,
        )
        self.batch_rows = Histogram(
            "ganops_batch_size",
            "Images per ONNX Runtime run (after micro-batching)",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.batch_requests = Histogram(
            "ganops_batch_requests",
            "Requests merged into one ONNX Runtime run",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "ganops_inference_seconds", "Time of one ONNX Runtime run", buckets=LATENCY_BUCKETS, registry=r
        )
        self.images = Counter("ganops_images", "Images generated", registry=r)
        self.ready = Gauge("ganops_ready", "1 once the model is loaded and warmed up", registry=r)

    def observe_batch(self, rows: int, requests: int, seconds: float) -> None:
        self.batch_rows.observe(rows)
        self.batch_requests.observe(requests)
        self.inference.observe(seconds)
        self.images.inc(rows)

    def observe_request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if status >= 400:
            kind = "overload" if status == 503 else "server" if status >= 500 else "client"
            self.errors.labels(route, kind).inc()
