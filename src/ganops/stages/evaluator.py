"""evaluator: train the domain feature network on the prepared data (once per dataset)."""

from __future__ import annotations

import logging

from ganops.config import Params
from ganops.data.prepared import load_split
from ganops.errors import TrainingError
from ganops.files import sha256_file, write_json
from ganops.metrics.evaluator import save_evaluator, train_evaluator
from ganops.runtime import pick_device
from ganops.stages import Layout

log = logging.getLogger(__name__)


def run(params: Params, layout: Layout, **_) -> dict:
    p = params.evaluator
    train, test = load_split(layout.prepared, "train"), load_split(layout.prepared, "test")
    model, accuracy = train_evaluator(p, train, test, params.seed, pick_device(params.train.device))
    if accuracy < p.min_accuracy:
        raise TrainingError(
            f"evaluator: test accuracy {accuracy:.4f} is below evaluator.min_accuracy={p.min_accuracy}; "
            "raise evaluator.epochs or evaluator.width (FID in a feature space that cannot tell classes apart "
            "would mislead)"
        )
    save_evaluator(layout.evaluator, model, accuracy)
    report = {
        "test_accuracy": accuracy,
        "test_count": len(test.images),
        "sha256": sha256_file(layout.evaluator),
    }
    write_json(layout.evaluator_report, report)
    log.info("evaluator: test accuracy %.4f", accuracy)
    return report
