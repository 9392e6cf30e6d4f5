"""evalset: the task's fixed evaluation set -> data/evalset/ (inputs.npz, targets.npz, manifest.json).

A restoration task is judged as a user judges it: on whole held-out photos when prepare kept them
(``data.crop: random_patches`` with ``data.whole_test_side``), each at its own size, mod-cropped to
the U-Net's multiple, degraded alone from (seed, Stream.EVALSET_WHOLE, its index), so masks are
sized to the photo; training still sees patches. Other data (arrays such as Fashion-MNIST, resized
files, pairs) is scored on the first ``restore.eval_images`` test images, degraded once in chunks
from (seed, Stream.EVALSET, chunk). Either way every run of the task, on any machine, is scored on
the same inputs, and a changed degradation param (the ``restore`` section) rebuilds them.

Both files hold one image per entry (data.prepared.save_image_list), so photos of different sizes
sit in one set. The sampling task has nothing to degrade: evaluate draws its latents from
(seed, Stream.EVALUATE_Z), and the manifest says so.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from ganops.cards import card
from ganops.config import Params
from ganops.data.prepared import EVAL_INPUTS, EVAL_TARGETS, load_split, load_whole_test, save_image_list
from ganops.files import write_json
from ganops.runtime import Stream, stream
from ganops.stages import Layout
from ganops.tasks import ImageTask, build_task

log = logging.getLogger(__name__)


def mod_crop(image: np.ndarray, multiple: int) -> np.ndarray:
    """``image`` (C, H, W) with its bottom rows and right columns trimmed to a multiple of ``multiple``
    (BasicSR's mod crop)."""
    _, height, width = image.shape
    return image[:, : height - height % multiple, : width - width % multiple]


def _whole_photos(task: ImageTask, photos: list[np.ndarray]) -> tuple[list, list, str]:
    targets = [mod_crop(photo, task.size_multiple) for photo in photos]
    too_small = [i for i, t in enumerate(targets) if min(t.shape[1:]) < 3 * task.size_multiple]
    if too_small:
        targets = [t for i, t in enumerate(targets) if i not in too_small]
        log.warning("evalset: %d held-out photo(s) too small for the U-Net left out", len(too_small))
    source = (
        "whole held-out photos (data/prepared/test_whole.npz), bottom and right edges trimmed to a "
        f"multiple of {task.size_multiple}, each degraded from (seed, EVALSET_WHOLE, its index)"
    )
    return task.whole_inputs(targets, Stream.EVALSET_WHOLE), targets, source


def _test_images(task: ImageTask, test, count: int) -> tuple[list, list, str]:
    with torch.no_grad():
        inputs = torch.cat(task.inputs_for(test.pairs[:count], Stream.EVALSET)).numpy()
    source = "the first restore.eval_images test images (data/prepared/test)"
    return list(inputs), list(test.images[:count]), source


def run(params: Params, layout: Layout, **_) -> dict:
    folder = layout.evalset
    folder.mkdir(parents=True, exist_ok=True)
    for stale in [*folder.glob("*.npy"), *folder.glob("*.npz")]:  # no other task's arrays left behind
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
    photos = load_whole_test(layout.prepared)
    if photos:
        inputs, targets, source = _whole_photos(task, photos[:count])
    else:
        inputs, targets, source = _test_images(task, test, count)
    inputs = [x.astype(np.float32) for x in inputs]
    sizes = sorted({tuple(t.shape[1:]) for t in targets})
    manifest = {
        "task": params.task,
        "count": len(targets),
        "pixels": int(sum(t.shape[1] * t.shape[2] for t in targets)),  # per channel, over the targets
        "sizes": {"smallest": list(sizes[0]), "largest": list(sizes[-1]), "distinct": len(sizes)},
        "whole_photos": bool(photos),
        "degradation": params.restore.model_dump(include={params.task}) or {},
        "inputs": {"file": EVAL_INPUTS, "sha256": save_image_list(folder / EVAL_INPUTS, inputs)},
        "targets": {"file": EVAL_TARGETS, "sha256": save_image_list(folder / EVAL_TARGETS, targets)},
        "source": source,
    }
    write_json(layout.evalset_manifest, manifest)
    log.info(
        "evaluation set: %d %s inputs (%s), %s to %s px, %.2f megapixels scored",
        len(targets),
        params.task,
        "whole photos" if photos else "test images",
        "x".join(map(str, sizes[0])),
        "x".join(map(str, sizes[-1])),
        manifest["pixels"] / 1e6,
    )
    return manifest
