"""evaluator: train the domain feature network on the prepared data (once per dataset).

Which network (``evaluator.objective``):
- ``supervised``: a classifier of the data's labels; it must pass the gate
  (ganops.metrics.evaluator_gate), else the stage stops;
- ``self_supervised``: trained without labels (ganops.metrics.selfsup);
- ``auto`` (default): supervised when the data has labels of at least two classes and the
  classifier passes the gate; otherwise self-supervised, with a one-line notice.
reports/evaluator.json says which one was used and why.
"""

from __future__ import annotations

import logging

from ganops.config import EvaluatorParams, Params
from ganops.data.prepared import PreparedSplit, load_split
from ganops.errors import DataError, TrainingError
from ganops.files import sha256_file, write_json
from ganops.metrics.evaluator import SELF_SUPERVISED, SUPERVISED, save_evaluator, train_evaluator
from ganops.metrics.evaluator_gate import judge
from ganops.metrics.selfsup import train_self_supervised
from ganops.runtime import pick_device
from ganops.stages import Layout

log = logging.getLogger(__name__)


def label_problem(train: PreparedSplit, test: PreparedSplit) -> str | None:
    """Why the labels cannot train a classifier, or None when they can."""
    if train.labels is None or test.labels is None:
        return "the prepared data has no labels"
    if len(set(train.labels.tolist())) < 2:
        return "the prepared data has a single class"
    return None


def run(params: Params, layout: Layout, **_) -> dict:
    p: EvaluatorParams = params.evaluator
    train, test = load_split(layout.prepared, "train"), load_split(layout.prepared, "test")
    device = pick_device(params.train.device)
    report: dict = {"requested": p.objective}
    objective = p.objective
    if objective == "self_supervised":
        reason = "evaluator.objective is self_supervised"
    elif problem := label_problem(train, test):
        if objective == SUPERVISED:
            raise DataError(
                f"evaluator: {problem}, so no classifier can be trained; "
                "set evaluator.objective to auto or self_supervised"
            )
        objective, reason = SELF_SUPERVISED, problem
    else:
        model, accuracy = train_evaluator(p, train, test, params.seed, device)
        verdict = judge(accuracy, test.labels, p.min_skill)
        report["gate"] = verdict.to_dict()
        if verdict.usable:
            objective, reason = SUPERVISED, f"the labels give a usable classifier: {verdict.describe()}"
            check = {"test_accuracy": accuracy}
        elif objective == SUPERVISED:
            raise TrainingError(
                f"evaluator: the classifier is not usable: {verdict.describe()}; raise evaluator.min_steps "
                "or evaluator.width, lower evaluator.min_skill, or set evaluator.objective to auto to fall "
                "back to the label-free evaluator (FID in a feature space that cannot tell classes apart "
                "would mislead)"
            )
        else:
            objective = SELF_SUPERVISED
            reason = f"the labels did not give a usable classifier ({verdict.describe()})"
            log.warning("evaluator: %s; using the label-free evaluator instead", reason)
    if objective == SELF_SUPERVISED:
        model, check = train_self_supervised(p, train, test, params.seed, device)
    save_evaluator(layout.evaluator, model, check)
    report.update(
        objective=objective,
        reason=reason,
        **check,
        test_count=len(test.images),
        sha256=sha256_file(layout.evaluator),
    )
    write_json(layout.evaluator_report, report)
    log.info("evaluator: %s (%s)", objective, reason)
    return report
