"""register: log the pipeline run to MLflow, register the ONNX generator, gate the aliases.

Every new version takes the ``challenger`` alias; ``champion`` moves to it only when the gate
(ganops.registry.gate) says it earned it. The decision and its reason go to the version's
tags and to reports/registry.json. Registering the same files again (a retry after an outage,
a Prefect retry, DVC and Prefect on one workspace) finds the version already made
(ganops.registry.registration) instead of making another.
"""

from __future__ import annotations

import json
import logging
import subprocess
from dataclasses import asdict
from pathlib import Path

from ganops.cards import registered_model
from ganops.config import Params
from ganops.data.prepared import dataset_fingerprint
from ganops.errors import DataError
from ganops.files import read_json, sha256_file, write_json
from ganops.registry.client import open_registry, registry_errors, workspace_path
from ganops.registry.gate import Candidate
from ganops.registry.registration import params_sha256, register_once
from ganops.registry.tracking import log_pipeline, numeric
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


def _interval(metrics: dict, metric: str) -> tuple[float, float] | None:
    """The 95% interval of the primary metric, when evaluate computed one."""
    low, high = metrics.get(f"{metric}_ci95_low"), metrics.get(f"{metric}_ci95_high")
    return (float(low), float(high)) if low is not None and high is not None else None


def _challenger(metrics: dict) -> Candidate:
    """The new version as the gate sees it: the task's primary metric (fid_domain for sampling)."""
    primary = metrics.get("primary", {"metric": "fid_domain", "higher_is_better": False})
    metric = primary["metric"]
    return Candidate(
        "new",
        float(metrics[metric]),
        metrics["evaluator_sha256"],
        _interval(metrics, metric),
        metric,
        primary["higher_is_better"],
        metrics.get("evaluation", ""),
    )


# What a server needs to call a restoration model, copied from the export's sidecar into the version's tags.
CONTRACT_KEYS = (
    "task", "layout", "value_range", "input_channels", "output_channels", "size_multiple", "scale",
    "trained_size", "mask_channel", "mask_hole_value", "masked_pixel_value", "input_colour", "output_colour",
)  # fmt: skip


def _contract(sidecar: dict) -> dict[str, str]:
    """The pre/post-processing contract as ``contract.<key>`` tags (none for a sampling generator)."""
    if "task" not in sidecar:
        return {}
    contract = {"input": sidecar["input"]["name"], **{k: sidecar[k] for k in CONTRACT_KEYS if k in sidecar}}
    return {
        f"contract.{key}": json.dumps(value) if isinstance(value, list) else str(value)
        for key, value in contract.items()
    }


def _what_was_measured_and_exported(layout: Layout, sidecar: dict) -> dict[str, str]:
    """Tags that say which weights the version holds, which evaluator measured them and what
    became of the fp16 variant, so nobody has to open the run to find out."""
    train = read_json(layout.train_report) if layout.train_report.exists() else {}
    tags = {"exported_weights": f"EMA weights of the last step ({train.get('steps', '?')})"}
    best, last = train.get("best_fid_live"), train.get("last_fid_live")
    if best is not None and last is not None and best < last:
        tags["exported_weights"] += (
            f"; the best live FID ({best:.4g}, step {train['best_step']}) was earlier than the last "
            f"({last:.4g}): its weights are best.pt in the run's checkpoint folder"
        )
    if layout.evaluator_report.exists():
        tags["evaluator_objective"] = str(read_json(layout.evaluator_report).get("objective", "supervised"))
    fp16 = sidecar.get("fp16") or {}
    tags["fp16"] = "written" if fp16.get("written") else f"skipped: {fp16.get('reason', 'not made')}"[:500]
    return tags


def run(params: Params, layout: Layout, **_) -> dict:
    name = registered_model(params.task, params.register.model_name)
    p = params.register.model_copy(update={"model_name": name})  # one registered model per task
    for needed in (layout.onnx, layout.onnx_sidecar, layout.metrics, layout.generator):
        if not needed.exists():
            raise DataError(f"{needed}: not found; run the stages before register (`dvc repro`)")
    sidecar = read_json(layout.onnx_sidecar)
    if sha256_file(layout.onnx) != sidecar["sha256"]:
        raise DataError(f"{layout.onnx}: sha256 differs from {layout.onnx_sidecar}; rerun the export stage")
    metrics = read_json(layout.metrics)
    tags = {
        "git_commit": _git_commit(layout.root),
        "dataset_sha256": dataset_fingerprint(layout.prepared),
        "params_sha256": params_sha256(params),  # not the register section: where, not what
        "evaluator_sha256": metrics["evaluator_sha256"],
        "onnx_sha256": sidecar["sha256"],
        # The evaluation is part of what is registered: another fid_domain is another registration.
        "metrics_sha256": sha256_file(layout.metrics),
    }
    tags.update(_what_was_measured_and_exported(layout, sidecar))
    tags.update(_contract(sidecar))
    flat_metrics = numeric(metrics)
    export_log = layout.timings(
        "export"
    )  # this machine's measured parity (ONNX Runtime's kernels vary by CPU)
    if export_log.exists():
        flat_metrics["onnx_parity_max_abs_diff"] = read_json(export_log).get(
            "parity_max_abs_diff", float("nan")
        )

    registry = open_registry(p, layout.root)
    challenger = _challenger(metrics)
    with registry_errors(registry.uri):
        done = register_once(
            registry,
            p,
            tags,
            challenger,
            lambda key: log_pipeline(params, layout, sidecar, flat_metrics, tags, key),
        )

    verdict = ("promoted: " if done.promoted else "kept champion: ") + done.reason
    log.info("%s %s v%s; %s", "found" if done.reused else "registered", p.model_name, done.version, verdict)
    here = layout.root.resolve()
    if workspace_path(here) != here and registry.uri.startswith("sqlite:///"):
        log.info(
            "this run is a temporary DVC experiment in %s, which DVC deletes afterwards: v%s is in the "
            "workspace's registry, %s (`ganops registry list` in %s shows it)",
            here,
            done.version,
            registry.uri,
            workspace_path(here),
        )
    record = {
        "tracking_uri": registry.uri,
        "model_name": p.model_name,
        "version": done.version,
        "run_id": done.run_id,
        "model_uri": f"models:/{p.model_name}/{done.version}",
        "aliases": done.aliases,
        "promoted": done.promoted,
        "reason": done.reason,
        "challenger": asdict(done.challenger),
        "champion_before": asdict(done.champion_before) if done.champion_before else None,
    }
    write_json(layout.registry, record)
    # DVC's output for this stage: what was registered, without ids or times, so the same inputs give
    # the same bytes (dvc.lock stays as committed) while a fresh clone still registers (not in git).
    write_json(
        layout.registered,
        {"model_name": p.model_name, **{k: tags[k] for k in sorted(tags) if k != "git_commit"}},
    )
    return record
