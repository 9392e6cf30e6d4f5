"""The registry on a team's stack: a throw-away PostgreSQL cluster, `mlflow server` on it, and two
pipelines registering at once in two processes. Debian's postgresql package provides the binaries."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

from ganops.config import parse_params
from ganops.errors import TransientRegistryError
from ganops.files import write_json
from ganops.models import ArchSpec, build_generator
from ganops.models.io import save_generator
from ganops.registry.client import ModelRegistry
from ganops.registry.lease import BEAT_TAG, HOLDER_TAG, TOKEN_TAG, lock_name
from ganops.stages import Layout
from ganops.stages.export import run as export
from mlflow_helpers import mlflow_server
from serve_helpers import free_port

from conftest import write_params

REPO = Path(__file__).resolve().parents[1]
PG_BIN = Path(os.environ.get("GANOPS_PG_BIN", "/usr/lib/postgresql/15/bin"))
SHA = "a" * 64
MODEL = "ganops-generator"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (PG_BIN / "initdb").exists(),
        reason=f"PostgreSQL server binaries not found in {PG_BIN} (apt-get install postgresql, "
        "or set GANOPS_PG_BIN to the folder holding initdb and pg_ctl)",
    ),
]


def _as_cluster_owner() -> list[str]:
    """initdb refuses to run as root: run the cluster as the postgres (or nobody) user then."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
            return ["runuser", "-u", user, "--"]
        except KeyError:
            continue
    pytest.skip("running as root and neither a postgres nor a nobody user exists for initdb")


def wait_until(check, seconds: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    pytest.fail(f"{what} did not come up in {seconds:.0f} s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def postgres():
    """A PostgreSQL cluster in a temp folder on a free loopback port; yields its SQLAlchemy URI."""
    as_owner = _as_cluster_owner()
    folder = Path(tempfile.mkdtemp(prefix="ganops-pg-"))  # under /tmp, reachable by the cluster owner
    if as_owner:
        owner = pwd.getpwnam(as_owner[2])
        os.chown(folder, owner.pw_uid, owner.pw_gid)
    port = free_port()
    data, log = folder / "data", folder / "postgres.log"

    def pg(*args: str) -> None:
        result = subprocess.run(as_owner + list(args), capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{args[0]} failed: {result.stdout}{result.stderr}"

    pg(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "ganops", "-E", "UTF8", "--no-sync")
    pg(
        str(PG_BIN / "pg_ctl"),
        "-D",
        str(data),
        "-l",
        str(log),
        "-w",
        "-t",
        "120",
        "-o",
        f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off",
        "start",
    )
    try:
        pg(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "ganops", "mlflow")
        yield f"postgresql+psycopg://ganops@127.0.0.1:{port}/mlflow"  # psycopg 3; plain postgresql:// means psycopg2 on SQLAlchemy 2.0
    finally:
        subprocess.run(as_owner + [str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def server(postgres, tmp_path_factory):
    """`mlflow server` with two workers on the PostgreSQL store and a proxied artifact folder."""
    with mlflow_server(tmp_path_factory.mktemp("mlflow-pg"), postgres, workers=2, timeout_s=240) as url:
        yield url


def exported_project(folder: Path, fid: float, experiment: str) -> Layout:
    """A project folder with what `ganops register` reads: its own generator, ONNX and metrics."""
    spec = ArchSpec(arch="dcgan", latent_dim=8, image_size=16, channels=1, g_width=4, d_width=4)
    layout = Layout(folder)
    save_generator(layout.generator, build_generator(spec).eval(), spec, step=1, note="test")
    export(parse_params({}), layout)
    write_json(layout.prepared / "manifest.json", {"splits": {"train": {"images_sha256": SHA}}})
    write_json(
        layout.metrics,
        {"fid_domain": fid, "kid_domain": 0.01, "floor": {"fid_domain": 0.1}, "evaluator_sha256": SHA},
    )
    write_params(folder / "params.yaml", {"register": {"experiment": experiment}})
    return layout


def registry_at(url: str) -> ModelRegistry:
    return ModelRegistry(url, MODEL)


def test_two_pipelines_registering_at_once_take_turns_at_the_gate(server, tmp_path):
    torch.manual_seed(0)
    fids = {"a": 20.0, "b": 30.0}  # whoever goes second meets the first as champion
    projects = {name: exported_project(tmp_path / name, fid, "race") for name, fid in fids.items()}
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")},
        "MLFLOW_TRACKING_URI": server,
        "PYTHONPATH": str(REPO / "src"),
    }
    racers = {
        name: subprocess.Popen(
            [sys.executable, "-m", "ganops", "register"],
            cwd=layout.root,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, layout in projects.items()
    }
    logs = {}
    for name, racer in racers.items():
        _, logs[name] = racer.communicate(timeout=600)
        assert racer.returncode == 0, logs[name]
    # The second really waited for the first: the lease did the serializing, not luck.
    assert sum("waiting for registry lock" in text for text in logs.values()) == 1, logs

    records = {name: json.loads(layout.registry.read_text()) for name, layout in projects.items()}
    registry = registry_at(server)
    versions = registry.versions()
    assert sorted(v["version"] for v in versions) == ["1", "2"]
    assert all(v["tags"]["ganops.state"] == "complete" for v in versions)
    assert sorted(r["version"] for r in records.values()) == ["1", "2"]

    first, second = sorted(records.values(), key=lambda r: int(r["version"]))
    assert first["promoted"] and first["reason"] == "no champion yet"
    # The second decision saw the first: no lost update, no second "no champion yet".
    assert second["champion_before"]["version"] == first["version"]
    assert second["promoted"] == (second["challenger"]["score"] < first["challenger"]["score"])

    holders = [v["version"] for v in versions if "champion" in v["aliases"]]
    assert holders == [records["a"]["version"]]  # exactly one champion: the lower fid_domain
    promoted = [r["version"] for r in (first, second) if r["promoted"]]
    assert registry.history("champion") == promoted
    assert registry.history("challenger") == [first["version"], second["version"]]
    for record in (first, second):
        decision = registry.show(record["version"])["tags"]["gate_decision"]
        assert decision.endswith(record["reason"])
    assert lock_name(MODEL) not in [m.name for m in registry.client.search_registered_models()]


def test_a_lock_left_by_a_dead_holder_is_broken_after_its_lease(server, tmp_path):
    registry = registry_at(server)
    registry.client.create_registered_model(
        lock_name(MODEL), tags={TOKEN_TAG: "dead", HOLDER_TAG: "a crashed pipeline", BEAT_TAG: "0"}
    )
    registry._lease.ttl_s = 3.0
    started = time.monotonic()
    with registry.lock():
        assert registry.client.get_registered_model(lock_name(MODEL)).tags[TOKEN_TAG] != "dead"
    waited = time.monotonic() - started
    assert 3.0 < waited < 30, waited
    assert lock_name(MODEL) not in [m.name for m in registry.client.search_registered_models()]


def test_a_holder_that_lost_its_lease_fails_before_moving_an_alias(server, tmp_path):
    registry = registry_at(server)
    before = registry.holders()
    with pytest.raises(TransientRegistryError, match="lost the registry lock"):
        with registry.lock():
            # Another writer broke this lease and took the lock (as after a stall longer than the ttl).
            registry.client.delete_registered_model(lock_name(MODEL))
            registry.client.create_registered_model(
                lock_name(MODEL), tags={TOKEN_TAG: "other", HOLDER_TAG: "the new holder", BEAT_TAG: "0"}
            )
            registry.move_alias("champion", "2", "must not happen")
    assert registry.holders() == before
    assert registry.client.get_registered_model(lock_name(MODEL)).tags[TOKEN_TAG] == "other"  # left alone
    registry.client.delete_registered_model(lock_name(MODEL))
