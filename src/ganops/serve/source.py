"""Find the ONNX generator to serve and prove it is the file that was exported or registered.

A MODEL argument is either a path to an ``.onnx`` file, checked against the sidecar JSON that
export writes beside it, or an MLflow URI (``models:/name@alias``, ``models:/name/version``),
resolved through the registry and checked against the version's ``onnx_sha256`` tag.

MLflow stores ONNX tensors as external data, so the downloaded ``model.onnx`` is not
byte-identical to the exported file. The check is made on the canonical bytes: the model with
every tensor inline, serialized once, which is exactly what export wrote. Those bytes are what
the session is built from, so what is checked is what runs.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ganops.errors import ServeError
from ganops.files import read_json, sha256_bytes

log = logging.getLogger(__name__)

_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class VerifiedModel:
    """ONNX bytes whose sha256 matched the recorded one, and where they came from."""

    data: bytes
    sha256: str
    origin: str  # the path or models:/ URI the user gave
    detail: str  # e.g. "ganops-generator v3" or the sidecar path


def _canonical(path: Path) -> bytes:
    """The model with external data folded back in, serialized like export serialized it."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        model = onnx.load_model(str(path), load_external_data=True)
    except (DecodeError, OSError, ValueError, RuntimeError) as err:
        raise ServeError(
            f"{path}: not a readable ONNX file ({type(err).__name__}: {err}); re-export it (`ganops export`)"
        ) from None
    from onnx.external_data_helper import _get_all_tensors

    for tensor in _get_all_tensors(model):
        tensor.ClearField("data_location")
        tensor.ClearField("external_data")
    return model.SerializeToString()


def verified_bytes(path: Path, expected_sha256: str, recorded_in: str) -> bytes:
    """The file's bytes if their sha256 (raw, or canonical when MLflow split the tensors out) matches."""
    if not path.is_file():
        raise ServeError(f"{path}: model file not found; run `ganops export` or pass another MODEL")
    data = path.read_bytes()
    if sha256_bytes(data) == expected_sha256:
        return data
    try:  # MLflow may have moved the tensors to external data: compare the canonical bytes
        canonical = _canonical(path)
        got = sha256_bytes(canonical)
    except ServeError:
        canonical, got = b"", sha256_bytes(data)
    if got != expected_sha256:
        raise ServeError(
            f"{path}: sha256 {got[:16]}... does not match {expected_sha256[:16]}... recorded in {recorded_in}; "
            "the file changed after export or registration. Re-export and re-register it, or serve the right file"
        )
    return canonical


def from_path(path: Path) -> VerifiedModel:
    sidecar = path.with_name(path.name + ".json")
    if not path.is_file():
        raise ServeError(f"{path}: model file not found; run `ganops export` or pass another MODEL")
    if not sidecar.is_file():
        raise ServeError(
            f"{sidecar}: not found, so {path.name} cannot be verified; serve the file that `ganops export` wrote "
            "(it writes the sidecar beside it) or a registered models:/ URI"
        )
    try:
        expected = read_json(sidecar)["sha256"]
    except (ValueError, KeyError, TypeError) as err:
        raise ServeError(f"{sidecar}: not a ganops export sidecar ({err!r}); re-export the model") from None
    data = verified_bytes(path, expected, str(sidecar))
    return VerifiedModel(data, expected, str(path), str(sidecar))


def _registry_version(client, name: str, alias: str | None, version: str | None):
    from mlflow.exceptions import MlflowException

    try:
        if alias:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, version)
    except MlflowException as err:
        wanted = f"alias @{alias}" if alias else f"version {version}"
        raise ServeError(
            f"models:/{name}: {wanted} not found in the registry ({err.error_code}); "
            "list versions with `mlflow ui` or register one (`ganops register`)"
        ) from None


def from_registry(uri: str, tracking_uri: str | None = None) -> VerifiedModel:
    match = _MODEL_URI.match(uri)
    if not match:
        raise ServeError(f"{uri}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # a down server fails in seconds
    import mlflow
    from mlflow import MlflowClient

    from ganops.registry.client import resolve_tracking_uri

    tracking = resolve_tracking_uri(tracking_uri)  # the same store `ganops register` wrote to
    name, alias, number = match["name"], match["alias"], match["version"]
    with tempfile.TemporaryDirectory(prefix="ganops-model-") as folder:
        try:
            client = MlflowClient(tracking_uri=tracking)
            found = _registry_version(client, name, alias, number)
            expected = found.tags.get("onnx_sha256")
            if not expected:
                raise ServeError(
                    f"{uri}: version {found.version} has no onnx_sha256 tag, so its file cannot be verified; "
                    "register it with `ganops register`"
                )
            mlflow.set_tracking_uri(tracking)
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{name}/{found.version}", dst_path=folder
            )
        except ServeError:
            raise
        except Exception as err:  # connection refused, missing artifacts, bad database ...
            raise ServeError(
                f"{uri}: could not be fetched from the MLflow registry at {tracking} ({type(err).__name__}: "
                f"{str(err).splitlines()[0][:200]}); check MLFLOW_TRACKING_URI and that the server is up"
            ) from None
        detail = f"{name} v{found.version} (tag onnx_sha256)"
        data = verified_bytes(Path(local) / "model.onnx", expected, detail)
    log.info("resolved %s -> %s, sha256 %s verified", uri, detail.split(" (")[0], expected[:12])
    return VerifiedModel(data, expected, uri, detail)


def resolve(model: str, tracking_uri: str | None = None) -> VerifiedModel:
    """A verified model from a path or a ``models:/`` URI; raises ServeError with the fix otherwise."""
    if model.startswith("models:/"):
        return from_registry(model, tracking_uri)
    return from_path(Path(model))
