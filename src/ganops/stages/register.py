"""register: log the run to MLflow, register the ONNX generator, gate the champion alias."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from pathlib import Path

from ganops.config import Params
from ganops.data.prepared import dataset_fingerprint
from ganops.errors import DataError
from ganops.files import read_json, sha256_file, write_json
from ganops.registry.mlflow_registry import register
from ganops.stages import Layout

log = logging.getLogger(__name__)


def _git_commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def _latest_grid(samples: Path) -> Path:
    grids = sorted(samples.glob("epoch_*.png"))
    if not grids:
        raise DataError(f"{samples}: no sample grids; run the train stage first")
    return grids[-1]


def run(params: Params, layout: Layout, **_) -> dict:
    for needed in (layout.onnx, layout.onnx_sidecar, layout.metrics):
        if not needed.exists():
            raise DataError(f"{needed}: not found; run the stages before register (`dvc repro`)")
    info = read_json(layout.onnx_sidecar)
    if sha256_file(layout.onnx) != info["sha256"]:
        raise DataError(f"{layout.onnx}: sha256 differs from {layout.onnx_sidecar}; rerun the export stage")
    metrics = read_json(layout.metrics)
    all_params = params.model_dump()
    tags = {
        "git_commit": _git_commit(layout.root),
        "dataset_sha256": dataset_fingerprint(layout.prepared),
        "params_sha256": hashlib.sha256(json.dumps(all_params, sort_keys=True).encode()).hexdigest(),
        "evaluator_sha256": metrics["evaluator_sha256"],
        "onnx_sha256": info["sha256"],
    }
    flat_metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
    flat_metrics.update({f"floor_{k}": v for k, v in metrics["floor"].items()})
    flat_metrics["onnx_parity_max_abs_diff"] = info["parity"]["max_abs_diff"]
    record = register(
        params.register,
        layout.onnx,
        info,
        flat_metrics,
        all_params,
        [_latest_grid(layout.samples), layout.metrics, layout.train_history],
        tags,
    )
    write_json(layout.registry, record)
    return record
