"""evalset: the task's fixed evaluation set -> data/evalset/ (inputs.npy, targets.npy, manifest.json).

A restoration task is scored on the first ``restore.eval_images`` test images, degraded once here
from (seed, Stream.EVALSET, chunk): every run of the task, on any machine, is scored on the same
inputs, and a changed degradation param (the ``restore`` section) rebuilds them. The sampling task
has nothing to degrade: evaluate draws its latents from (seed, Stream.EVALUATE_Z), and the
manifest says so.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ganops.cards import card
from ganops.config import Params
from ganops.data.prepared import load_split
from ganops.files import atomic_path, sha256_file, write_json
from ganops.runtime import Stream, stream
from ganops.stages import Layout
from ganops.tasks import build_task

log = logging.getLogger(__name__)


def _save(path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array)


def run(params: Params, layout: Layout, **_) -> dict:
    folder = layout.evalset
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.npy"):  # a task without arrays must not leave another task's behind
        stale.unlink()
    if card(params.task).image_to_image is None:
        manifest = {
            "task": params.task,
            "count": 0,
            "inputs": "none: evaluate draws evaluate.num_samples latents from (seed, Stream.EVALUATE_Z)",
        }
        write_json(layout.evalset_manifest, manifest)
        return manifest
    task = build_task(params, torch.device("cpu"), stream(params.seed, Stream.LATENT_NOISE))
    test = load_split(layout.prepared, "test")
    task.check(test.images)
    count = params.restore.eval_images
    targets = test.images[:count]
    with torch.no_grad():
        inputs = torch.cat(task.inputs_for(test.pairs[:count], Stream.EVALSET)).numpy()
    _save(folder / "inputs.npy", inputs.astype(np.float32))
    _save(folder / "targets.npy", targets)
    manifest = {
        "task": params.task,
        "count": len(targets),
        "degradation": params.restore.model_dump(include={params.task}) or {},
        "inputs": {"shape": list(inputs.shape), "sha256": sha256_file(folder / "inputs.npy")},
        "targets": {"shape": list(targets.shape), "sha256": sha256_file(folder / "targets.npy")},
        "source": "the first restore.eval_images test images (data/prepared/test)",
    }
    write_json(layout.evalset_manifest, manifest)
    log.info("evaluation set: %d %s inputs of shape %s", len(targets), params.task, list(inputs.shape[1:]))
    return manifest
