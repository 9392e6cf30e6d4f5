"""Requests/s and p50/p99 latency of `ganops serve` on loopback, with and without micro-batching.

    python benchmarks/serve_load.py models/generator.onnx [--requests 2000] [--clients 16] [--threads 1] [--rounds 5]

Starts one server per configuration (a separate process, as a user would), warms them up, then
drives them in alternating rounds with a bounded number of requests from concurrent clients on
127.0.0.1 and prints one JSON line per configuration (medians over rounds) and a table. Images per request: 1 and 64. Every number comes from this one
run, side by side, on the same machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from ganops.serve.loadgen import run_load  # noqa: E402
from serve_helpers import serve_process  # noqa: E402  (the tests' launcher: free port, wait for /readyz)

log = logging.getLogger("serve_load")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model")
    parser.add_argument(
        "--requests", type=int, default=2000, help="requests per run at n=1 (n=64 runs use 1/8)"
    )
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument(
        "--threads", default="1", help="ONNX Runtime threads of the server (leave a core to the client)"
    )
    parser.add_argument("--delay-ms", default="2")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per configuration")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    rows = []
    with contextlib.ExitStack() as stack:
        servers = {}
        for batching in ("--no-batching", "--batching"):
            flags = [batching, "--batch-delay-ms", args.delay_ms, "--threads", args.threads, "--max-n", "64"]
            servers[batching == "--batching"] = stack.enter_context(serve_process(args.model, *flags))
        for base in servers.values():  # warm-up: connections, ORT arenas
            run_load(base, requests=100, clients=args.clients, n=1)
            run_load(base, requests=20, clients=args.clients, n=64)
        # Rounds alternate the two servers, so load from other processes on a shared machine hits
        # both alike; each row is the median over rounds.
        runs: dict[tuple[int, bool], list] = {}
        for _ in range(args.rounds):
            for n, requests in ((1, args.requests), (64, max(args.requests // 8, 50))):
                for batching, base in servers.items():
                    result = run_load(base, requests=requests, clients=args.clients, n=n, max_seconds=300)
                    runs.setdefault((n, batching), []).append(result)
        for (n, batching), results in runs.items():
            row = {
                "n": n,
                "batching": batching,
                "clients": args.clients,
                "rounds": len(results),
                "requests_per_round": results[0].requests,
                "errors": sum(r.errors for r in results),
                **{
                    k: statistics.median(getattr(r, k) for r in results)
                    for k in ("rps", "images_per_s", "p50_ms", "p99_ms")
                },
            }
            print(json.dumps(row), flush=True)
            rows.append(row)
    print(
        f"\n{'images/request':>14} {'micro-batching':>14} {'req/s':>8} {'images/s':>9} {'p50 ms':>7} {'p99 ms':>7} errors"
    )
    for r in rows:
        print(
            f"{r['n']:>14} {'on' if r['batching'] else 'off':>14} {r['rps']:>8.1f} {r['images_per_s']:>9.0f} "
            f"{r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} {r['errors']}"
        )
    for n in (1, 64):
        off, on = (next(r for r in rows if r["n"] == n and r["batching"] == b) for b in (False, True))
        print(f"n={n}: micro-batching throughput gain {on['rps'] / off['rps']:.2f}x")


if __name__ == "__main__":
    main()
