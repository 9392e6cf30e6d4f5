"""The model registry as people and the gate use it: versions, aliases, promotion, rollback.

Every alias move records why on the version (tag ``alias.<alias>.reason``) and appends to the
registered model's ``<alias>.history`` tag, which ``rollback`` walks back. Registrations into
a local SQLite store are serialized with a file lock beside the database, so two pipelines
registering at once never race on version numbers or on the champion alias.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from ganops.config import RegisterParams
from ganops.errors import RegistryError, TransientRegistryError
from ganops.registry.gate import Candidate

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


def resolve_tracking_uri(explicit: str | None, root: Path = Path(".")) -> str:
    """``explicit``, else $MLFLOW_TRACKING_URI, else a SQLite file in the project root."""
    if explicit or os.environ.get("MLFLOW_TRACKING_URI"):
        return explicit or os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


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


class ModelRegistry:
    def __init__(self, uri: str, name: str) -> None:
        # Fail in seconds, not minutes, when a server is down (MLflow's default retries for ~2 min).
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        import mlflow
        from mlflow import MlflowClient

        mlflow.set_tracking_uri(uri)
        self.uri, self.name = uri, name
        self._file_lock = None
        if uri.startswith("sqlite:///"):
            from filelock import FileLock

            self._file_lock = FileLock(f"{uri.removeprefix('sqlite:///')}.lock", timeout=600)
        with self.lock():  # the first client of a new SQLite file creates its tables: never twice at once
            self.client = MlflowClient(tracking_uri=uri)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Serialize writes to a local SQLite file (re-entrant); a server serializes its own writes."""
        with self._file_lock or contextlib.nullcontext():
            yield

    # --- reading -------------------------------------------------------------------------
    def _version(self, version: str):
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version(self.name, str(version))
        except MlflowException as err:
            if err.error_code == "RESOURCE_DOES_NOT_EXIST":
                known = ", ".join(v["version"] for v in self.versions()) or "none"
                raise RegistryError(
                    f"{self.name} has no version {version}; versions: {known} (see `ganops registry list`)"
                ) from None
            raise

    def use_experiment(self, name: str) -> None:
        """Make ``name`` the active experiment, creating it with the right artifact root."""
        import mlflow

        with self.lock():
            if self.client.get_experiment_by_name(name) is None:
                self.client.create_experiment(name, artifact_location=local_artifact_root(self.uri))
        mlflow.set_experiment(name)

    def by_alias(self, alias: str):
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_model_version_by_alias(self.name, alias)
        except MlflowException as err:
            if err.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                return None
            raise

    def candidate(self, alias: str) -> Candidate | None:
        version = self.by_alias(alias)
        return None if version is None else Candidate.from_tags(str(version.version), version.tags)

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
    def tag(self, version: str, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, str(version), key, value)

    def history(self, alias: str) -> list[str]:
        model = self.client.get_registered_model(self.name)
        return json.loads(model.tags.get(f"{alias}.history", "[]"))

    def move_alias(self, alias: str, version: str, reason: str) -> None:
        with self.lock():
            version = str(self._version(version).version)
            self.client.set_registered_model_alias(self.name, alias, version)
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            self.tag(version, {f"alias.{alias}.reason": f"{stamp} {reason}"})
            history = [v for v in self.history(alias) if v != version] + [version]
            self.client.set_registered_model_tag(self.name, f"{alias}.history", json.dumps(history))

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
            self.move_alias(alias, previous, f"rollback from v{current.version}: {reason}")
            self.client.set_registered_model_tag(self.name, f"{alias}.history", json.dumps(history[:-1]))
            return previous


def open_registry(params: RegisterParams, root: Path = Path(".")) -> ModelRegistry:
    uri = tracking_uri(params, root)
    try:
        return ModelRegistry(uri, params.model_name)
    except Exception as err:
        raise registry_error(uri, err) from None
