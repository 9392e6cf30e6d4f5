"""`ganops serve` against `mlflow models serve` of the same registered generator, under the same load.

    python benchmarks/serve.py [--model models:/ganops-generator@champion] [--requests 1000] [--clients 16]

Candidate: `ganops serve MODEL_URI` (ONNX Runtime, micro-batching). Baseline: `mlflow models serve -m
runs:/<run_id>/generator-pytorch --env-manager local`, the PyTorch flavor that the register stage
logs in the same MLflow run as the registered ONNX version. Both run as separate processes on
127.0.0.1 and get the same bounded load from ganops.serve.loadgen: one image per request, the same
number of requests from the same number of concurrent clients, rounds alternating between them.
The tracking URI is $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the repository (run `make run`
first). Each figure is the median over rounds.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from ganops.serve.loadgen import run_load  # noqa: E402
from serve_helpers import free_port, serve_process  # noqa: E402

WARM_UP = 50  # requests per server before the timed rounds


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def pytorch_flavor(model_uri: str) -> tuple[str, int]:
    """runs:/<run_id>/generator-pytorch of the registered version behind ``model_uri``, and its latent size."""
    import mlflow
    from mlflow import MlflowClient

    name, _, ref = model_uri.removeprefix("models:/").partition("@")
    client = MlflowClient()
    if ref:
        version = client.get_model_version_by_alias(name, ref)
    else:
        name, _, number = model_uri.removeprefix("models:/").partition("/")
        version = client.get_model_version(name, number)
    uri = f"runs:/{version.run_id}/generator-pytorch"
    run = client.get_run(version.run_id)
    logged = mlflow.search_logged_models(
        experiment_ids=[run.info.experiment_id],
        filter_string=f"source_run_id = '{version.run_id}' AND name = 'generator-pytorch'",
        output_format="list",
    )
    if not logged:  # versions registered before the register stage logged the PyTorch flavor
        raise RuntimeError(
            f"version {version.version}'s run logged no PyTorch flavor ({uri}); rerun the register stage "
            "or pass --model models:/NAME/VERSION of a version that has one"
        )
    latent = int(run.data.params.get("model.latent_dim", 64))
    return uri, latent


@contextlib.contextmanager
def mlflow_process(uri: str, env: dict) -> Iterator[str]:
    port = free_port()
    log = tempfile.TemporaryFile("w+")
    command = ["mlflow", "models", "serve", "-m", uri, "--env-manager", "local"]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # MLflow's scoring server answers /ping with 200 once the model is loaded (it has no /readyz).
        wait_ready_mlflow(base, process, log)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_ready_mlflow(base: str, process: subprocess.Popen, log, timeout: float = 120.0) -> None:
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"exited with {process.returncode}: {log.read()[-2000:]}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{base}/ping", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{base} was not ready in {timeout} s")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="models:/ganops-generator@champion")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", default="1", help="ganops serve's ONNX Runtime threads (a core for the client)"
    )
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{REPO / 'mlflow.db'}")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    try:
        uri, latent = pytorch_flavor(args.model)
    except Exception as err:
        fail(f"baseline set-up failed: no PyTorch flavor for {args.model} ({type(err).__name__}: {err})")
    rng = np.random.default_rng(0)
    count = max(args.requests, WARM_UP)  # one latent per request, warm-up included
    latents = rng.standard_normal((count, 1, latent), dtype=np.float32).round(6).tolist()

    def mlflow_body(i: int) -> dict:
        return {"inputs": latents[i]}

    rows: dict[str, list] = {}
    with contextlib.ExitStack() as stack:
        servers = {}
        try:
            flags = ("--threads", args.threads, "--max-n", "64")
            servers["ganops serve (ONNX Runtime, micro-batching)"] = (
                stack.enter_context(serve_process(args.model, *flags, cwd=REPO)),
                {},
            )
        except Exception as err:
            fail(f"candidate `ganops serve {args.model}` failed to start: {type(err).__name__}: {err}")
        try:
            servers["mlflow models serve (PyTorch flavor)"] = (
                stack.enter_context(mlflow_process(uri, env)),
                {"route": "/invocations", "body": mlflow_body},
            )
        except Exception as err:
            fail(f"baseline `mlflow models serve -m {uri}` failed to start: {type(err).__name__}: {err}")
        for name, (base, options) in servers.items():  # warm-up; a server that errors here fails the run
            result = run_load(base, requests=WARM_UP, clients=args.clients, n=1, **options)
            if result.errors:
                which = "baseline" if name.startswith("mlflow") else "candidate"
                fail(f"{which} {name} answered errors on warm-up: statuses {result.statuses}")
        for _ in range(args.rounds):
            for name, (base, options) in servers.items():
                result = run_load(
                    base, requests=args.requests, clients=args.clients, n=1, max_seconds=300, **options
                )
                rows.setdefault(name, []).append(result)

    print(
        f"\n{args.requests} requests of 1 image per round, {args.clients} clients, {args.rounds} rounds, 127.0.0.1"
    )
    print("\n| server | requests/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|")
    medians = {}
    for name, results in rows.items():
        m = {k: statistics.median(getattr(r, k) for r in results) for k in ("rps", "p50_ms", "p99_ms")}
        medians[name] = m
        print(
            f"| {name} | {m['rps']:,.0f} | {m['p50_ms']:.1f} | {m['p99_ms']:.1f} | {sum(r.errors for r in results)} |"
        )
    ours, theirs = medians.values()
    print(
        f"\nrequests/s ratio {ours['rps'] / theirs['rps']:.1f}x; p99 {ours['p99_ms']:.1f} vs {theirs['p99_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
