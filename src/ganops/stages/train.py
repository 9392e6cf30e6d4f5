"""train: the GAN -> models/generator.pt, checkpoints, per-epoch sample grids, loss and live-FID history."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

from ganops.config import Params
from ganops.files import read_json, write_json
from ganops.metrics.cache import cache_folder
from ganops.stages import Layout
from ganops.training import distributed, launch
from ganops.training.loop import TrainPaths, TrainResult, train

log = logging.getLogger(__name__)


def train_paths(layout: Layout, data: Layout | None = None, feature_cache: Path | None = None) -> TrainPaths:
    """Where training reads and writes in ``layout``. The prepared data, the evaluator and the
    real-feature cache come from ``data`` when given: tests train many runs on one shared project."""
    data = data or layout
    return TrainPaths(
        prepared=data.prepared,
        generator=layout.generator,
        checkpoints=layout.checkpoints,
        samples=layout.samples,
        history=layout.train_history,
        evaluator=data.evaluator,
        live=layout.train_live,
        feature_cache=feature_cache or cache_folder(data.root),
    )


def run(params: Params, layout: Layout, **_) -> dict:
    workers = launch.processes(params.train)
    if (workers > 1 or launch.nodes() > 1) and not launch.is_worker():
        launch.run_workers(workers, params, layout.root)  # they train; rank 0 writes the report
        if launch.node_rank() != 0:
            log.info("node %d trained its share; node 0 wrote the outputs", launch.node_rank())
            return {}
        return read_json(layout.train_report)
    result = asdict(train(params, train_paths(layout)))
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
