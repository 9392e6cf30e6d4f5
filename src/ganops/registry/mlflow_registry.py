"""Register the exported generator in MLflow and move the champion alias only when earned.

The gate compares like with like: a challenger takes the ``champion`` alias when there is no
champion, or when its ``fid_domain`` is lower than the champion's as measured with the same
evaluator (same sha256). FIDs from different feature networks are never compared.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ganops.config import RegisterParams
from ganops.errors import RegistryError

log = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def tracking_uri(params: RegisterParams) -> str:
    return params.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


@dataclass(frozen=True)
class Candidate:
    """What the gate knows about one registered version."""

    version: str
    fid_domain: float
    evaluator_sha256: str


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(challenger: Candidate, champion: Candidate | None) -> Decision:
    if champion is None:
        return Decision(True, "no champion yet")
    if champion.evaluator_sha256 != challenger.evaluator_sha256:
        return Decision(
            False,
            f"champion v{champion.version} was measured with another evaluator "
            f"({champion.evaluator_sha256[:12]} vs {challenger.evaluator_sha256[:12]}); FIDs are not comparable. "
            "Re-evaluate the champion with this evaluator or promote by hand",
        )
    if challenger.fid_domain < champion.fid_domain:
        return Decision(
            True,
            f"fid_domain {challenger.fid_domain:.4g} < champion v{champion.version}'s {champion.fid_domain:.4g}",
        )
    return Decision(
        False,
        f"fid_domain {challenger.fid_domain:.4g} >= champion v{champion.version}'s {champion.fid_domain:.4g}",
    )


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _signature(sidecar: dict):
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    inputs = Schema([TensorSpec(np.dtype(np.float32), (-1, sidecar["latent_dim"]), sidecar["input"]["name"])])
    outputs = Schema(
        [TensorSpec(np.dtype(np.float32), (-1, *sidecar["image_shape"]), sidecar["output"]["name"])]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def _champion(client, name: str, alias: str) -> Candidate | None:
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, alias)
    except MlflowException as err:
        if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    tags = version.tags
    return Candidate(
        str(version.version), float(tags.get("fid_domain", "inf")), tags.get("evaluator_sha256", "")
    )


def register(
    params: RegisterParams,
    onnx_path: Path,
    sidecar: dict,
    metrics: dict,
    all_params: dict,
    artifacts: list[Path],
    tags: dict[str, str],
) -> dict:
    """Log a run, register a new model version and apply the promotion gate; returns the record."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "3")  # fail in seconds, not minutes, when down
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    import mlflow
    import onnx
    from mlflow import MlflowClient

    uri = tracking_uri(params)
    try:
        mlflow.set_tracking_uri(uri)
        mlflow.set_experiment(params.experiment)
        client = MlflowClient()
        with mlflow.start_run(run_name=f"ganops-{tags.get('params_sha256', '')[:8]}") as run:
            mlflow.log_params(_flatten(all_params))
            mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
            mlflow.set_tags(tags)
            for path in artifacts:
                mlflow.log_artifact(str(path))
            info = mlflow.onnx.log_model(
                onnx.load_model(str(onnx_path)),
                name="generator",
                signature=_signature(sidecar),
                registered_model_name=params.model_name,
                pip_requirements=["onnxruntime", "onnx"],  # explicit: inference of these costs seconds
            )
        version = str(info.registered_model_version)
        challenger = Candidate(version, float(metrics["fid_domain"]), tags["evaluator_sha256"])
        for key, value in {**tags, "fid_domain": str(challenger.fid_domain)}.items():
            client.set_model_version_tag(params.model_name, version, key, value)
        champion = _champion(client, params.model_name, params.champion_alias)
        decision = decide(challenger, champion)
        if decision.promote:
            client.set_registered_model_alias(params.model_name, params.champion_alias, version)
        client.set_model_version_tag(
            params.model_name,
            version,
            "gate_decision",
            ("promoted: " if decision.promote else "kept champion: ") + decision.reason,
        )
        aliases = client.get_model_version(params.model_name, version).aliases
    except RegistryError:
        raise
    except Exception as err:  # connection refused, HTTP errors, database locked, ...
        raise RegistryError(
            f"MLflow registry at {uri} failed: {type(err).__name__}: {err}. "
            "Check that the tracking server is up and MLFLOW_TRACKING_URI is right; earlier outputs are untouched"
        ) from None
    log.info("registered %s v%s; %s", params.model_name, version, decision.reason)
    return {
        "tracking_uri": uri,
        "model_name": params.model_name,
        "version": version,
        "run_id": run.info.run_id,
        "model_uri": f"models:/{params.model_name}/{version}",
        "aliases": sorted(aliases),
        "promoted": decision.promote,
        "reason": decision.reason,
        "challenger": asdict(challenger),
        "champion_before": asdict(champion) if champion else None,
    }
