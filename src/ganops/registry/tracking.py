"""Log one pipeline run to MLflow: a parent run with a nested run per stage.

DVC runs each stage in its own process, so the register stage logs the whole pipeline after
the fact from the files the stages wrote: per-step losses (with their step numbers), the
sample grid of every epoch, each stage's params section and report, and the stages' timings
from the untracked logs/ (``timing.*``). The parent run holds the model in two flavors: ONNX
(registered by ganops.registry.registration; what ``ganops serve`` runs) and PyTorch (with an
input example, for ``mlflow models serve`` and notebooks). Every run carries the registration
key, so a retry can find, reuse or end what an interrupted attempt left.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Any

import numpy as np

from ganops.config import Params
from ganops.files import read_json
from ganops.registry.registration import KEY_TAG, MODEL_ID_TAG, MODEL_URI_TAG, LoggedRun
from ganops.stages import STAGES, Layout

log = logging.getLogger(__name__)

_BATCH = 1000  # MLflow's limit of metrics per log_batch call
# The stages before this one, whose files it logs after the fact.
EARLIER_STAGES = STAGES[: STAGES.index("register")]


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def numeric(tree: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in flatten(tree).items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }


def _log_step_metrics(client, run_id: str, csv_path: Path) -> int:
    """Every numeric column of a per-step CSV as an MLflow metric with its step."""
    from mlflow.entities import Metric

    if not csv_path.exists():
        return 0
    metrics = []
    with open(csv_path) as f:
        for row in csv.DictReader(f):
            step = int(float(row["step"]))
            for key, value in row.items():
                if key not in ("step", "epoch") and value not in ("", None):
                    metrics.append(Metric(key, float(value), 0, step))
    for start in range(0, len(metrics), _BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + _BATCH], synchronous=True)
    return len(metrics)


def _signature(sidecar: dict, named: bool = True):
    """Tensor signature; the PyTorch flavor takes one bare array, so its tensors are unnamed."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    x, images = (sidecar["input"]["name"], sidecar["output"]["name"]) if named else (None, None)
    inputs = Schema([TensorSpec(np.dtype(np.float32), _shape(sidecar["input"]), x)])
    outputs = Schema([TensorSpec(np.dtype(np.float32), _shape(sidecar["output"]), images)])
    return ModelSignature(inputs=inputs, outputs=outputs)


def _shape(tensor: dict) -> tuple[int, ...]:
    """An exported tensor's shape for MLflow: its named (dynamic) axes become -1."""
    return tuple(-1 if isinstance(axis, str) else axis for axis in tensor["shape"])


def _example(sidecar: dict, seed: int) -> np.ndarray:
    """Two inputs of the exported model: latents, or images at the size it was trained at."""
    rng = np.random.default_rng(seed)
    shape = [2, *_shape(sidecar["input"])[1:]]
    if "trained_size" not in sidecar:  # noise in
        return rng.standard_normal(shape, dtype=np.float32)
    shape[2:] = [size // sidecar["scale"] for size in sidecar["trained_size"]]  # superres: the low resolution
    return rng.uniform(-1, 1, shape).astype(np.float32)


def timing_metrics(layout: Layout) -> dict[str, float]:
    """``timing.<stage>_seconds`` (wall time) for each earlier stage with a log, plus the training
    loop's own clock and throughput (``timing.train_loop_seconds``, ``timing.images_per_second``)."""
    timings = {}
    for stage in EARLIER_STAGES:
        path = layout.timings(stage)
        if not path.exists():
            continue
        facts = read_json(path)
        if "seconds" in facts:
            timings[f"timing.{stage}_seconds"] = float(facts["seconds"])
        if "train_seconds" in facts:
            timings["timing.train_loop_seconds"] = float(facts["train_seconds"])
        if "images_per_second" in facts:
            timings["timing.images_per_second"] = float(facts["images_per_second"])
    return timings


def onnx_providers() -> list[str]:
    """What MLflow's ONNX flavor asks onnxruntime for; CUDA only where there is one, else
    onnxruntime prints red `Failed to load library` lines although it then runs on CPU."""
    import torch

    return (
        ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if torch.cuda.is_available()
        else ["CPUExecutionProvider"]
    )


def _section(params: Params, stage: str):
    """The params section a stage reads (prepare reads ``data``); None for validate, which checks them all."""
    name = "data" if stage == "prepare" else stage
    return getattr(params, name) if name in type(params).model_fields else None


def _stage_runs(mlflow, params: Params, layout: Layout, key: str) -> None:
    """A nested run per earlier stage with a params section: its params, its report, train's curves."""
    from PIL import Image

    for stage in EARLIER_STAGES:
        section, report = _section(params, stage), layout.report(stage)
        if section is None:
            continue
        with mlflow.start_run(run_name=stage, nested=True) as run:
            mlflow.set_tags({"ganops.stage": stage, KEY_TAG: key})
            mlflow.log_params(flatten(section.model_dump()))
            if report.exists():
                mlflow.log_metrics(numeric(read_json(report)))
                mlflow.log_artifact(str(report))
            if stage == "train":
                mlflow.log_params(flatten(params.model.model_dump(), "model."))
                client = mlflow.MlflowClient()
                count = sum(
                    _log_step_metrics(client, run.info.run_id, csv_path)
                    for csv_path in (layout.train_history, layout.train_live)
                )
                log.info("logged %d per-step training metrics (losses, live FID)", count)
                for grid in sorted(layout.samples.glob("epoch_*.png")):
                    epoch = int(grid.stem.split("_")[1])
                    mlflow.log_image(Image.open(grid), key="samples", step=epoch)


def log_pipeline(
    params: Params,
    layout: Layout,
    sidecar: dict,
    metrics: dict[str, float],
    tags: dict[str, str],
    key: str,
) -> LoggedRun:
    """Log the run tree and both model flavors (the ONNX one is registered afterwards)."""
    import mlflow
    import onnx
    import torch

    from ganops.models.io import load_generator

    example = _example(sidecar, params.seed)
    with mlflow.start_run(run_name=f"pipeline-{tags['params_sha256'][:8]}") as parent:
        mlflow.set_tags({**tags, "ganops.stage": "pipeline", KEY_TAG: key})
        mlflow.log_params(flatten(params.model_dump()))
        mlflow.log_metrics({**metrics, **timing_metrics(layout)})
        _stage_runs(mlflow, params, layout, key)
        grids = sorted(layout.samples.glob("epoch_*.png"))
        if grids:
            mlflow.log_artifact(str(grids[-1]))
        info = mlflow.onnx.log_model(
            onnx.load_model(str(layout.onnx)),
            name="generator",
            signature=_signature(sidecar),
            input_example={sidecar["input"]["name"]: example},
            onnx_execution_providers=onnx_providers(),
            save_as_external_data=False,  # keep the registered bytes identical to the export
            pip_requirements=["onnxruntime", "onnx"],  # explicit: inferring them costs seconds
        )
        G, _ = load_generator(layout.generator, "cpu")
        mlflow.pytorch.log_model(
            G,
            name="generator-pytorch",
            signature=_signature(sidecar, named=False),
            input_example=example,
            # torch.export ("pt2") needs no pickling and, exported with batch 2, keeps the batch dynamic.
            pip_requirements=[f"torch=={torch.__version__.split('+')[0]}"],
        )
        # Last: a run with this tag has logged everything and can be registered by a retry.
        mlflow.set_tags({MODEL_URI_TAG: info.model_uri, MODEL_ID_TAG: info.model_id})
    return LoggedRun(parent.info.run_id, info.model_uri, info.model_id)
