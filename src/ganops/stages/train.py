"""train: the GAN -> models/generator.pt, checkpoints, per-epoch sample grids, loss and live-FID history."""

from __future__ import annotations

import logging
from dataclasses import asdict

from ganops.config import Params
from ganops.files import write_json
from ganops.metrics.cache import cache_folder
from ganops.stages import Layout
from ganops.training import distributed
from ganops.training.loop import TrainPaths, TrainResult, train

log = logging.getLogger(__name__)


def run(params: Params, layout: Layout, **_) -> dict:
    paths = TrainPaths(
        layout.prepared,
        layout.generator,
        layout.checkpoints,
        layout.samples,
        layout.train_history,
        evaluator=layout.evaluator,
        live=layout.train_live,
        feature_cache=cache_folder(layout.root),
    )
    result = asdict(train(params, paths))
    if not distributed.is_main():  # under torchrun, rank 0 writes the report
        return result
    timings = {key: result.pop(key) for key in TrainResult.TIMING_FIELDS}
    write_json(layout.train_report, result)  # DVC-tracked: the same inputs give the same bytes
    timings["train_seconds"] = timings.pop("seconds")
    write_json(layout.timings("train"), {"steps": result["steps"], **timings})
    log.info(
        "trained %d steps (resumed from %d) at %.0f images/s",
        result["steps"],
        timings["resumed_from"],
        timings["images_per_second"],
    )
    return result
