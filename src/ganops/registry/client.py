"""The model registry as people and the gate use it: versions, aliases, promotion, rollback.

Every alias move records why on the version (tag ``alias.<alias>.reason``) and in the
registered model's ``<alias>.history`` tag, which ``rollback`` walks back. The intent (target
and new history, tag ``<alias>.pending``) is written before the alias moves, so a move cut off
midway reads back as either not done or done, with its history, never as an alias that moved
without a record. Registrations and alias moves are serialized: in a local SQLite store with a
file lock beside the database; in any other store (a tracking server, PostgreSQL) with a lease
held in the registry itself (ganops.registry.lease). So two pipelines registering at once never
race on version numbers or on the champion alias, and each gate decision sees the one before it.
After a move the alias and its history are read back (``verify``): a writer that lost its lease
fails instead of reporting a move that another writer undid.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn, TypeVar

from ganops.config import RegisterParams
from ganops.errors import RegistryError, TransientRegistryError
from ganops.registry.gate import Candidate
from ganops.registry.lease import RegistryLease

# A holder renews its lease every LEASE_TTL_S / 4; waiters break a lease not renewed for LEASE_TTL_S.
LEASE_TTL_S = 120.0

_TRANSIENT = (
    "database is locked",
    "connection",
    "timed out",
    "temporarily",
    "503",
    "502",
    "504",
    "max retries",
)


# Where DVC makes the copies that `dvc exp run --temp` and queued experiments run in (DVC 3:
# <workspace>/.dvc/tmp/exps/standalone/tmpXXXX/ for --temp), deleted after the run.
_EXPERIMENT_COPIES = (".dvc", "tmp", "exps")


def workspace_path(path: Path) -> Path:
    """``path`` (resolved), or, when it lies in a copy DVC made for a temporary experiment, the same
    place in the workspace the copy was made from: what is written there outlives the run."""
    here = path.resolve()
    parts = here.parts
    for i in range(len(parts) - len(_EXPERIMENT_COPIES)):
        if parts[i : i + len(_EXPERIMENT_COPIES)] != _EXPERIMENT_COPIES:
            continue
        workspace, copies = Path(*parts[:i]), Path(*parts[: i + len(_EXPERIMENT_COPIES)])
        # The copy is a git clone: its root is the outermost folder below copies/ that holds .git.
        below = [a for a in (*reversed(here.parents), here) if a != copies and a.is_relative_to(copies)]
        copy = next((a for a in below if (a / ".git").exists()), None)
        if copy is not None and (workspace / ".dvc" / "config").is_file():  # `dvc init` writes it
            return workspace / here.relative_to(copy)
    return here


def resolve_tracking_uri(explicit: str | None, root: Path = Path(".")) -> str:
    """``explicit``, else $MLFLOW_TRACKING_URI, else a SQLite file in the project root.

    A relative SQLite path is relative to the project root. Inside a temporary DVC experiment
    (`dvc exp run --temp`, queued runs) a SQLite file is the workspace's, not the copy's, which DVC
    deletes after the run: the version is registered where the workspace registers."""
    uri = explicit or os.environ.get("MLFLOW_TRACKING_URI") or "sqlite:///mlflow.db"
    if not uri.startswith("sqlite:///"):
        return uri
    return f"sqlite:///{workspace_path(root / uri.removeprefix('sqlite:///'))}"


def tracking_uri(params: RegisterParams, root: Path = Path(".")) -> str:
    return resolve_tracking_uri(params.tracking_uri, root)


def local_artifact_root(uri: str) -> str | None:
    """For a local SQLite store, artifacts live beside it in mlruns/ (not in the caller's cwd)."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri.removeprefix("sqlite:///")).parent / "mlruns").resolve().as_uri()


def registry_error(uri: str, err: Exception) -> RegistryError:
    """Wrap an MLflow/HTTP/DB error; connection problems and busy databases are transient."""
    text = f"{type(err).__name__}: {err}"
    kind = TransientRegistryError if any(t in text.lower() for t in _TRANSIENT) else RegistryError
    return kind(
        f"MLflow registry at {uri} failed: {text.splitlines()[0][:300]}. Check that the tracking server is up "
        "and MLFLOW_TRACKING_URI is right; earlier outputs are untouched"
    )


@contextlib.contextmanager
def registry_errors(uri: str) -> Iterator[None]:
    """Any failure of the registry (MLflow, HTTP, the database) inside the block becomes
    ``registry_error``'s one-line message; the project's own errors pass unchanged."""
    try:
        yield
    except RegistryError:
        raise
    except Exception as err:  # connection refused, HTTP errors, a locked database, ...
        raise registry_error(uri, err) from None


T = TypeVar("T")


class ModelRegistry:
    def __init__(self, uri: str, name: str) -> None:
        # Fail in seconds, not minutes, when a server is down (MLflow's default retries for ~2 min).
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        import mlflow
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(uri)
        self.uri, self.name = uri, name
        self._file_lock, self._lease, self._depth = None, None, 0
        if uri.startswith("sqlite:///"):
            from filelock import FileLock

            self._file_lock = FileLock(f"{uri.removeprefix('sqlite:///')}.lock", timeout=600)
        # The first client of a new SQLite file creates its tables: never twice at once.
        with self._file_lock or contextlib.nullcontext():
            self.client = MlflowClient(tracking_uri=uri)
        if self._file_lock is None:
            self._lease = RegistryLease(self.client, name, ttl_s=LEASE_TTL_S)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Keep every other ganops writer of this registry out (re-entrant): a file lock beside a
        local SQLite store, otherwise a lease in the registry itself."""
        if self._file_lock is not None:
            with self._file_lock:
                yield
            return
        if self._depth == 0:
            self._lease.acquire()
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._lease.release()

    def _still_locked(self) -> None:
        """Fence: before and after a move, this process must still hold the lease."""
        if self._lease is not None:
            self._lease.verify()

    # --- reading -------------------------------------------------------------------------
    def _mlflow(self, call: Callable[[], T], **answers: Callable[[], T]) -> T:
        """``call()``; an MLflow error whose code is one of ``answers`` gives that answer instead (a
        value, or a user-facing error it raises), any other becomes ``registry_error``'s message."""
        from mlflow.exceptions import MlflowException

        try:
            return call()
        except MlflowException as err:
            if err.error_code in answers:
                return answers[err.error_code]()
            raise registry_error(self.uri, err) from None

    def _version(self, version: str):
        return self._mlflow(
            lambda: self.client.get_model_version(self.name, str(version)),
            RESOURCE_DOES_NOT_EXIST=lambda: self._no_version(version),
        )

    def _no_version(self, version: str) -> NoReturn:
        known = ", ".join(v["version"] for v in self.versions()) or "none"
        raise RegistryError(
            f"{self.name} has no version {version}; versions: {known} (see `ganops registry list`)"
        ) from None

    def use_experiment(self, name: str) -> str:
        """Make ``name`` the active experiment, creating it with the right artifact root; returns its id."""
        import mlflow

        with self.lock():
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                experiment_id = self.client.create_experiment(
                    name, artifact_location=local_artifact_root(self.uri)
                )
            else:
                experiment_id = experiment.experiment_id
        mlflow.set_experiment(experiment_id=experiment_id)
        return experiment_id

    def by_alias(self, alias: str):
        """The version holding ``alias``; None when the model or the alias does not exist yet."""
        return self._mlflow(
            lambda: self.client.get_model_version_by_alias(self.name, alias),
            RESOURCE_DOES_NOT_EXIST=lambda: None,
            INVALID_PARAMETER_VALUE=lambda: None,  # what MLflow answers for an alias nobody set
        )

    def candidate(self, alias: str) -> Candidate | None:
        version = self.by_alias(alias)
        return None if version is None else Candidate.from_tags(str(version.version), version.tags)

    def versions_tagged(self, key: str, value: str) -> list:
        return list(self.client.search_model_versions(f"name='{self.name}' and tags.`{key}` = '{value}'"))

    def holders(self) -> dict[str, str]:
        """Alias -> version number, for every alias of the registered model."""
        aliases = self._mlflow(
            lambda: self.client.get_registered_model(self.name).aliases, RESOURCE_DOES_NOT_EXIST=dict
        )
        return {alias: str(version) for alias, version in sorted(aliases.items())}

    def versions(self) -> list[dict]:
        found = self.client.search_model_versions(f"name='{self.name}'")
        # Search results leave out aliases; fetch each version to get them.
        numbers = sorted(int(v.version) for v in found)
        return [self._describe(self.client.get_model_version(self.name, str(n))) for n in numbers]

    def show(self, version: str) -> dict:
        return self._describe(self._version(version))

    @staticmethod
    def _describe(v) -> dict:
        return {
            "version": str(v.version),
            "aliases": sorted(v.aliases),
            "run_id": v.run_id,
            "created": datetime.fromtimestamp(v.creation_timestamp / 1000, UTC).isoformat(timespec="seconds"),
            "tags": dict(sorted(v.tags.items())),
        }

    # --- writing -------------------------------------------------------------------------
    def create_version(self, model_uri: str, run_id: str, model_id: str | None, tags: dict[str, str]):
        """A new version of the registered model with all its tags, in one call (never an untagged version)."""
        with self.lock():
            self._mlflow(
                lambda: self.client.create_registered_model(self.name),
                RESOURCE_ALREADY_EXISTS=lambda: None,
                ALREADY_EXISTS=lambda: None,
            )
            return self.client.create_model_version(
                self.name, model_uri, run_id=run_id, tags=tags, model_id=model_id
            )

    def link_logged_model(self, model_id: str, version: str) -> None:
        """Name the version on its logged model (MLflow's UI shows it), as ``mlflow.register_model`` does."""
        from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

        linked = json.loads(self.client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS, "[]"))
        entry = {"name": self.name, "version": str(version)}
        if entry not in linked:
            self.client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(linked + [entry])})

    def tag(self, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, str(version), key, value)

    def history(self, alias: str) -> list[str]:
        """The alias's holders, oldest first, ending with the current one."""
        model = self.client.get_registered_model(self.name)
        pending = json.loads(model.tags.get(f"{alias}.pending", "null"))
        holder = {a: str(v) for a, v in model.aliases.items()}.get(alias)
        if pending and pending["version"] == holder:  # the alias moved; its history write may not have
            return pending["history"]
        return json.loads(model.tags.get(f"{alias}.history", "[]"))

    def _move(self, alias: str, version: str, reason: str, history: list[str]) -> None:
        """Move the alias with its reason and history: the intent is recorded first, so an interrupted
        move leaves either the old state (``history`` ignores the pending record) or the new one."""
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        intent = json.dumps({"version": version, "history": history})
        self._still_locked()
        self.client.set_registered_model_tag(self.name, f"{alias}.pending", intent)
        self.tag(version, {f"alias.{alias}.reason": f"{stamp} {reason}"})
        self.client.set_registered_model_alias(self.name, alias, version)
        self.client.set_registered_model_tag(self.name, f"{alias}.history", json.dumps(history))
        self.client.delete_registered_model_tag(self.name, f"{alias}.pending")
        self._verify_move(alias, version, history)

    def _verify_move(self, alias: str, version: str, history: list[str]) -> None:
        """Read the move back: the alias, its history, and (with a lease) that nobody took over meanwhile."""
        model = self.client.get_registered_model(self.name)
        holder = {a: str(v) for a, v in model.aliases.items()}.get(alias)
        stored = json.loads(model.tags.get(f"{alias}.history", "[]"))
        if holder != version or stored != history:
            raise TransientRegistryError(
                f"{self.name}@{alias} reads back as v{holder} with history {stored} right after this "
                f"process moved it to v{version} ({history}): another writer moved it without the "
                "registry lock (an older ganops or a hand edit). Check `ganops registry list`, then rerun"
            )
        self._still_locked()

    def move_alias(self, alias: str, version: str, reason: str) -> None:
        with self.lock():
            version = str(self._version(version).version)
            self._move(alias, version, reason, [v for v in self.history(alias) if v != version] + [version])

    def rollback(self, alias: str, reason: str) -> str:
        """Point ``alias`` back at the version that held it before the current one."""
        with self.lock():
            current = self.by_alias(alias)
            history = self.history(alias)
            if current is None or len(history) < 2:
                raise RegistryError(
                    f"{self.name}@{alias} has no earlier holder to roll back to (history: {history or 'empty'}); "
                    "use `ganops registry promote VERSION` instead"
                )
            previous = history[-2]
            self._move(alias, previous, f"rollback from v{current.version}: {reason}", history[:-1])
            return previous


def open_registry(params: RegisterParams, root: Path = Path(".")) -> ModelRegistry:
    uri = tracking_uri(params, root)
    with registry_errors(uri):
        return ModelRegistry(uri, params.model_name)
