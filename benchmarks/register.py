"""Cost of a registration against the cost of its idempotent retry.

    python benchmarks/register.py [--repeats 3]

Builds a tiny exported project in a temporary folder with a local SQLite MLflow registry, then
times: a first registration (logs the run tree and both model flavors, creates the version and
moves the aliases); a retry of the same files (finds the complete version: what a Prefect retry
or a second runner pays); and, on new files, a retry after an outage cut the first attempt off
at its first alias move (finds the pending version and completes it). Prints seconds and ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import torch

from ganops.config import parse_params
from ganops.files import write_json
from ganops.models import ArchSpec, build_generator
from ganops.models.io import save_generator
from ganops.registry.client import open_registry
from ganops.stages import Layout
from ganops.stages.export import run as export
from ganops.stages.register import run as register


def exported_project(root: Path) -> Layout:
    spec = ArchSpec(arch="dcgan", latent_dim=8, image_size=16, channels=1, g_width=4, d_width=4)
    layout = Layout(root)
    save_generator(layout.generator, build_generator(spec).eval(), spec, step=1, note="bench")
    export(parse_params({}), layout)
    write_json(layout.prepared / "manifest.json", {"splits": {"train": {"images_sha256": "a" * 64}}})
    layout.train_history.parent.mkdir(parents=True)
    layout.train_history.write_text("step,epoch,loss_d,loss_g,d_real,d_fake\n1,0,1,1,0.5,0.5\n")
    return layout


def with_fid(layout: Layout, fid: float) -> Layout:
    write_json(layout.metrics, {"fid_domain": fid, "kid_domain": 0.01, "evaluator_sha256": "a" * 64})
    return layout


def timed(params, layout: Layout) -> tuple[float, dict]:
    began = time.perf_counter()
    record = register(params, layout)
    return time.perf_counter() - began, record


def interrupted_at_first_alias_move(params, layout: Layout) -> None:
    """One registration attempt that loses the registry right after creating its version."""
    real = mlflow.MlflowClient.set_registered_model_alias

    def outage(self, *args, **kwargs):
        raise ConnectionError("simulated outage: connection refused")

    mlflow.MlflowClient.set_registered_model_alias = outage
    try:
        register(params, layout)
    except Exception:
        pass
    finally:
        mlflow.MlflowClient.set_registered_model_alias = real


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="distinct models registered per row")
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)
        os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        params = parse_params({"register": {"experiment": "bench"}})
        open_registry(params.register)  # the SQLite tables are created once, outside the timings
        layout = exported_project(Path(tmp))
        first, retry, completed = [], [], []
        for i in range(args.repeats):
            seconds, record = timed(params, with_fid(layout, 20.0 + i))
            again, same = timed(params, layout)
            assert same["version"] == record["version"], "a retry must find the version it made"
            first.append(seconds)
            retry.append(again)
            interrupted_at_first_alias_move(params, with_fid(layout, 100.0 + i))
            seconds, finished = timed(params, layout)
            assert finished["version"] == str(int(record["version"]) + 1), "the pending version is completed"
            completed.append(seconds)
        versions = open_registry(params.register).versions()
        assert len(versions) == 2 * args.repeats, f"expected {2 * args.repeats} versions, got {len(versions)}"
    full = statistics.median(first)
    print(f"{'registration (median of ' + str(args.repeats) + ')':<44} {'seconds':>8} {'/ full':>8}")
    print(f"{'full: log runs + models, version, aliases':<44} {full:>8.3f} {1.0:>8.3f}")
    for name, times in (
        ("retry, version complete (found)", retry),
        ("retry after outage (pending -> complete)", completed),
    ):
        print(f"{name:<44} {statistics.median(times):>8.3f} {statistics.median(times) / full:>8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
