"""One registration, all or nothing and idempotent.

A registration is identified by a key: the sha256 of what it registers (the ONNX bytes, the
params that shaped them, the prepared dataset, the evaluator and the evaluation report). Where
and how it is registered (the ``register`` section: store, experiment, model name, aliases,
margin) is not part of it: a changed ``register.promotion_margin`` reruns the stage, which finds
the model already registered instead of registering it again. Before anything is
created, the registry is searched for that key, so a retry after an outage, a Prefect task
retry or a second runner on the same workspace finds the work already done:

1. a version with the key exists: its recorded gate decision is reused; if it is still
   ``pending`` (an attempt died during the alias moves) the moves are redone and it is marked
   ``complete``; nothing new is created;
2. no version, but a finished pipeline run with the key that logged the model: that run is
   registered (an attempt died between logging and registering);
3. otherwise the pipeline is logged afresh. Runs an earlier attempt left ``RUNNING`` are ended
   as ``KILLED`` first.

Everything happens under ``registry.lock()`` (a file lock for SQLite, a lease in the registry for
a server or database; ganops.registry.lease), so concurrent pipelines register one after another
and each gate decision sees the champion the previous one left.

A version is created with every tag in one call (identity, metrics, gate decision, state
``pending``), so there is never an untagged version; the gate decides before the version exists,
so a retry never re-judges a version against itself after it already took the champion alias.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass

from ganops.config import Params, RegisterParams
from ganops.registry.client import ModelRegistry
from ganops.registry.gate import Candidate, decide

log = logging.getLogger(__name__)

KEY_TAG = "ganops.registration_key"
STATE_TAG = "ganops.state"
PENDING, COMPLETE = "pending", "complete"
MODEL_URI_TAG = "ganops.model_uri"  # set on the pipeline run once its ONNX model is logged
MODEL_ID_TAG = "ganops.model_id"
PROMOTE_TAG = "ganops.promote"
CHAMPION_BEFORE_TAG = "ganops.champion_before"
# What a registration registers: the same values mean the same registration.
KEY_FIELDS = ("onnx_sha256", "params_sha256", "dataset_sha256", "evaluator_sha256", "metrics_sha256")
# Params sections that say where, how or when a model is registered, not what it is: ``register``
# (the store and model name are where the key is looked up; experiment, aliases and margin are how)
# and ``schedule`` (when Prefect runs the pipeline).
NOT_WHAT_IS_REGISTERED = ("register", "schedule")


def params_sha256(params: Params) -> str:
    """sha256 of the params that shaped the model and its evaluation (every section but
    NOT_WHAT_IS_REGISTERED): the ``params_sha256`` part of the registration key."""
    shaping = params.model_dump(exclude=set(NOT_WHAT_IS_REGISTERED))
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()


def registration_key(identity: dict[str, str]) -> str:
    material = json.dumps({field: identity[field] for field in KEY_FIELDS}, sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()


@dataclass(frozen=True)
class LoggedRun:
    """A pipeline run whose ONNX model is logged and can be registered."""

    run_id: str
    model_uri: str
    model_id: str | None


@dataclass(frozen=True)
class Registration:
    version: str
    run_id: str
    promoted: bool
    reason: str
    challenger: Candidate
    champion_before: Candidate | None
    aliases: list[str]
    reused: bool  # True when an earlier attempt had already created the version


def register_once(
    registry: ModelRegistry,
    params: RegisterParams,
    identity: dict[str, str],
    challenger: Candidate,
    log_run: Callable[[str], LoggedRun],
) -> Registration:
    """Register the model that ``log_run(key)`` logs, unless this key was registered already.

    ``identity`` holds the KEY_FIELDS (and any other tags for the version); ``challenger`` is
    the gate's view of the new model (its version is filled in here).
    """
    key = registration_key(identity)
    with registry.lock():
        experiment_id = registry.use_experiment(params.experiment)
        version = _existing_version(registry, key)
        reused = version is not None
        if version is None:
            logged = _logged_run(registry, experiment_id, key) or log_run(key)
            champion = registry.candidate(params.champion_alias)
            decision = decide(challenger, champion, params.promotion_margin)
            tags = {
                **identity,
                **challenger.tags(),
                KEY_TAG: key,
                MODEL_ID_TAG: logged.model_id or "",  # (the SQL store does not return a version's model_id)
                "gate_decision": verdict(decision.promote, decision.reason),
                PROMOTE_TAG: "true" if decision.promote else "false",
                CHAMPION_BEFORE_TAG: json.dumps(asdict(champion) if champion else None),
                STATE_TAG: PENDING,
            }
            version = registry.create_version(logged.model_uri, logged.run_id, logged.model_id, tags)
        else:
            log.info(
                "%s v%s already holds this registration (key %s); reusing it and its gate decision "
                "(a changed register section does not re-judge it: `ganops registry promote` moves aliases)",
                registry.name,
                version.version,
                key[:12],
            )
        number = str(version.version)
        tags = dict(version.tags)
        promoted = tags[PROMOTE_TAG] == "true"
        reason = tags["gate_decision"].split(": ", 1)[1]
        if tags[STATE_TAG] != COMPLETE:
            registry.move_alias(params.challenger_alias, number, "newest candidate from the pipeline")
            if promoted:
                registry.move_alias(params.champion_alias, number, f"gate: {reason}")
            if tags.get(MODEL_ID_TAG):
                registry.link_logged_model(tags[MODEL_ID_TAG], number)
            registry.tag(number, {STATE_TAG: COMPLETE})
        before = json.loads(tags[CHAMPION_BEFORE_TAG])
        return Registration(
            version=number,
            run_id=version.run_id,
            promoted=promoted,
            reason=reason,
            challenger=Candidate.from_tags(number, tags),
            champion_before=None if before is None else _candidate(before),
            aliases=registry.show(number)["aliases"],
            reused=reused,
        )


def verdict(promote: bool, reason: str) -> str:
    """The ``gate_decision`` tag: what happened, then why (the part after the first ': ')."""
    return ("promoted: " if promote else "kept champion: ") + reason


def _candidate(fields: dict) -> Candidate:
    interval = fields.get("ci95")
    return Candidate(**{**fields, "ci95": tuple(interval) if interval else None})


def _existing_version(registry: ModelRegistry, key: str):
    """The version an earlier attempt made for this key (the oldest, should a server race have made two)."""
    found = registry.versions_tagged(KEY_TAG, key)
    return min(found, key=lambda v: int(v.version)) if found else None


def _logged_run(registry: ModelRegistry, experiment_id: str, key: str) -> LoggedRun | None:
    """A finished run of an earlier attempt that logged the model; ends the attempts' stale RUNNING runs."""
    reusable = None
    # Called under registry.lock(), which every registering process holds while it logs: a RUNNING
    # run with this key belongs to an attempt that died.
    for run in registry.client.search_runs([experiment_id], filter_string=f"tags.`{KEY_TAG}` = '{key}'"):
        if run.info.status == "RUNNING":
            log.warning("ending run %s that an interrupted registration left RUNNING", run.info.run_id)
            registry.client.set_terminated(run.info.run_id, "KILLED")
        elif run.info.status == "FINISHED" and MODEL_URI_TAG in run.data.tags and reusable is None:
            reusable = LoggedRun(
                run.info.run_id, run.data.tags[MODEL_URI_TAG], run.data.tags.get(MODEL_ID_TAG)
            )
    if reusable:
        log.info("registering run %s, which an interrupted attempt logged", reusable.run_id)
    return reusable
