import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from ganops.config import parse_params
from ganops.errors import RegistryError
from ganops.files import write_json
from ganops.models import ArchSpec, build_generator
from ganops.registry.client import open_registry
from ganops.registry.gate import Candidate, decide
from ganops.stages import Layout
from ganops.stages.export import run as export
from ganops.stages.register import run as register
from ganops.training.loop import _save_generator

from conftest import write_params

SHA = "a" * 64


def test_gate_promotes_when_there_is_no_champion():
    assert decide(Candidate("1", 50.0, SHA), None).promote


def test_gate_promotes_only_a_lower_fid():
    champion = Candidate("1", 10.0, SHA)
    assert decide(Candidate("2", 9.0, SHA), champion).promote
    assert not decide(Candidate("2", 10.0, SHA), champion).promote
    assert not decide(Candidate("2", 11.0, SHA), champion).promote


def test_gate_never_compares_fids_from_different_evaluators():
    decision = decide(Candidate("2", 1.0, "b" * 64), Candidate("1", 10.0, SHA))
    assert not decision.promote and "another evaluator" in decision.reason


def test_gate_requires_more_than_the_margin():
    champion = Candidate("1", 10.0, SHA)
    assert not decide(Candidate("2", 9.5, SHA), champion, margin=0.5).promote
    assert decide(Candidate("2", 9.4, SHA), champion, margin=0.5).promote


def test_gate_refuses_an_insignificant_challenger_when_intervals_overlap():
    champion = Candidate("1", 10.0, SHA, (9.0, 11.0))
    overlapping = decide(Candidate("2", 8.5, SHA, (7.5, 9.5)), champion)
    assert not overlapping.promote and "intervals overlap" in overlapping.reason
    assert decide(Candidate("2", 8.0, SHA, (7.5, 8.5)), champion).promote


def test_candidate_survives_a_round_trip_through_tags():
    candidate = Candidate("3", 7.25, SHA, (6.5, 8.0))
    assert Candidate.from_tags("3", candidate.tags()) == candidate


@pytest.fixture()
def exported(tmp_path):
    """A project folder with everything register reads: ONNX + sidecar, metrics, a grid, a loss history."""
    spec = ArchSpec("dcgan", latent_dim=8, image_size=16, channels=1, g_width=4, d_width=4)
    layout = Layout(tmp_path)
    _save_generator(layout.generator, build_generator(spec).eval(), spec, step=1, run_id="test")
    export(parse_params({}), layout)
    write_json(layout.prepared / "manifest.json", {"splits": {"train": {"images_sha256": SHA}}})
    layout.samples.mkdir(parents=True)
    from torchvision.utils import save_image

    save_image(torch.rand(4, 1, 16, 16), layout.samples / "epoch_001.png")
    layout.train_history.parent.mkdir(parents=True)
    layout.train_history.write_text("step,epoch,loss_d,loss_g,d_real,d_fake\n1,0,1,1,0.5,0.5\n")
    return layout


def with_fid(layout: Layout, fid: float, ci95: tuple[float, float] | None = None) -> Layout:
    interval = {"fid_domain_ci95_low": ci95[0], "fid_domain_ci95_high": ci95[1]} if ci95 else {}
    write_json(
        layout.metrics,
        {
            "fid_domain": fid,
            "kid_domain": 0.01,
            "floor": {"fid_domain": 0.1},
            "evaluator_sha256": SHA,
            **interval,
        },
    )
    return layout


@pytest.fixture()
def sqlite_registry(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)  # artifacts land in ./mlruns of the test folder
    return parse_params({"register": {"experiment": "gate-test"}})


def test_registry_gating_with_a_real_mlflow_registry(exported, sqlite_registry):
    params = sqlite_registry
    first = register(params, with_fid(exported, 20.0))
    assert first["promoted"] and first["aliases"] == ["challenger", "champion"]
    assert first["reason"] == "no champion yet"

    worse = register(params, with_fid(exported, 25.0))
    assert not worse["promoted"] and worse["aliases"] == ["challenger"]
    assert worse["champion_before"]["version"] == first["version"]

    better = register(params, with_fid(exported, 15.0))
    assert better["promoted"] and better["aliases"] == ["challenger", "champion"]
    assert json.loads(exported.registry.read_text()) == better

    registry = open_registry(params.register)
    assert registry.candidate("champion").version == better["version"]
    tags = registry.show(worse["version"])["tags"]
    assert tags["gate_decision"].startswith("kept champion") and tags["evaluator_sha256"] == SHA
    assert "gate: fid_domain 15" in registry.show(better["version"])["tags"]["alias.champion.reason"]

    # The ONNX flavor is what gets registered; it serves through pyfunc with any batch size.
    model = mlflow.pyfunc.load_model("models:/ganops-generator@champion")
    assert model.predict({"z": np.random.randn(3, 8).astype(np.float32)})["images"].shape == (3, 1, 16, 16)


def test_insignificant_improvement_keeps_the_champion(exported, sqlite_registry):
    register(sqlite_registry, with_fid(exported, 20.0, (18.0, 22.0)))
    close = register(sqlite_registry, with_fid(exported, 19.0, (17.5, 20.5)))
    assert not close["promoted"] and "intervals overlap" in close["reason"]
    assert tuple(close["challenger"]["fid_ci95"]) == (17.5, 20.5)
    clear = register(sqlite_registry, with_fid(exported, 12.0, (11.0, 13.0)))
    assert clear["promoted"] and "champion" in clear["aliases"]


def test_pytorch_flavor_is_logged_and_accepts_other_batch_sizes(exported, sqlite_registry):
    record = register(sqlite_registry, with_fid(exported, 20.0))
    model = mlflow.pyfunc.load_model(f"runs:/{record['run_id']}/generator-pytorch")
    assert model.predict(np.random.randn(5, 8).astype(np.float32)).shape == (5, 1, 16, 16)


def test_pipeline_run_has_nested_stage_runs_and_step_metrics(exported, sqlite_registry):
    exported.train_history.write_text(
        "step,epoch,loss_d,loss_g,d_real,d_fake\n1,0,1.5,0.7,0.6,0.4\n2,0,1.2,0.9,0.7,0.3\n"
    )
    (exported.train_live).write_text("step,fid_live,class_coverage,class_kl\n2,9.5,1,0.1\n")
    record = register(sqlite_registry, with_fid(exported, 20.0))
    client = mlflow.MlflowClient()
    parent = client.get_run(record["run_id"])
    assert parent.data.tags["evaluator_sha256"] == SHA and "git_commit" in parent.data.tags
    assert parent.data.tags["dataset_sha256"] == SHA and len(parent.data.tags["params_sha256"]) == 64
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{record['run_id']}'"
    )
    assert sorted(r.data.tags["ganops.stage"] for r in children) == [
        "evaluate",
        "evaluator",
        "export",
        "prepare",
        "train",
    ]
    train_run = next(r for r in children if r.data.tags["ganops.stage"] == "train")
    history = client.get_metric_history(train_run.info.run_id, "loss_d")
    assert [(m.step, m.value) for m in history] == [(1, 1.5), (2, 1.2)]
    assert [(m.step, m.value) for m in client.get_metric_history(train_run.info.run_id, "fid_live")] == [
        (2, 9.5)
    ]


def test_promote_and_rollback_record_their_reasons(exported, sqlite_registry):
    first = register(sqlite_registry, with_fid(exported, 20.0))
    second = register(sqlite_registry, with_fid(exported, 25.0))
    registry = open_registry(sqlite_registry.register)
    registry.move_alias("champion", second["version"], "promoted by hand: a person preferred it")
    assert registry.candidate("champion").version == second["version"]
    assert registry.rollback("champion", "bad samples in production") == first["version"]
    assert registry.candidate("champion").version == first["version"]
    assert "rollback from v2: bad samples" in registry.show(first["version"])["tags"]["alias.champion.reason"]
    with pytest.raises(RegistryError, match="no earlier holder"):
        registry.rollback("champion", "again")
    with pytest.raises(RegistryError, match="has no version 9; versions: 1, 2"):
        registry.move_alias("champion", "9", "typo")


def test_registry_that_is_down_fails_clearly_and_keeps_outputs(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port: nothing listens
    write_json(exported.registry, {"version": "previous"})
    with pytest.raises(RegistryError, match=r"MLflow registry at http://127.0.0.1:9 failed"):
        register(parse_params({}), with_fid(exported, 20.0))
    assert json.loads(exported.registry.read_text()) == {"version": "previous"}


def test_concurrent_registrations_give_distinct_versions(exported, tmp_path):
    write_params(tmp_path / "params.yaml", {"register": {"experiment": "race"}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    with_fid(exported, 20.0)
    racers = [
        subprocess.Popen(
            [sys.executable, "-m", "ganops", "register"],
            cwd=tmp_path,
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for racer in racers:
        assert racer.wait(timeout=300) == 0, racer.stderr.read()
    monkey_env = {"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    os.environ.update(monkey_env)
    try:
        registry = open_registry(parse_params({}).register)
        versions = registry.versions()
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI")
    assert [v["version"] for v in versions] == ["1", "2"]
    assert sum("champion" in v["aliases"] for v in versions) == 1
    assert sum("challenger" in v["aliases"] for v in versions) == 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real `mlflow server` process on loopback: SQLite backend, proxied local artifact store."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{folder / 'server.db'}",
            "--artifacts-destination",
            str(folder / "artifacts"),
            "--workers",
            "1",
        ],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "server.log", "w"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/health", timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail(f"mlflow server did not come up: {(folder / 'server.log').read_text()[-2000:]}")
    yield url
    server.terminate()
    server.wait(timeout=30)


def test_registration_through_a_tracking_server(exported, mlflow_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.chdir(tmp_path)
    params = parse_params({"register": {"experiment": "server"}})
    first = register(params, with_fid(exported, 20.0))
    assert first["tracking_uri"] == mlflow_server and "champion" in first["aliases"]
    worse = register(params, with_fid(exported, 30.0))
    assert not worse["promoted"]
    assert (
        not (tmp_path / "mlruns").exists() and not (tmp_path / "mlflow.db").exists()
    )  # all went to the server
    model = mlflow.pyfunc.load_model("models:/ganops-generator@champion")
    assert model.predict({"z": np.zeros((2, 8), np.float32)})["images"].shape == (2, 1, 16, 16)


def test_registry_cli_lists_promotes_and_names_what_exists(exported, sqlite_registry, tmp_path):
    first = register(sqlite_registry, with_fid(exported, 20.0))
    register(sqlite_registry, with_fid(exported, 30.0))
    write_params(tmp_path / "params.yaml", {})

    def ganops(*args):
        return subprocess.run(
            [sys.executable, "-m", "ganops", "registry", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    listing = ganops("list")
    assert listing.returncode == 0
    lines = listing.stdout.splitlines()
    assert lines[0].startswith("v1") and "champion" in lines[0] and "challenger" in lines[1]

    promoted = ganops("promote", "2", "--reason", "preferred by the art team")
    assert promoted.returncode == 0 and "@champion -> v2" in promoted.stdout
    assert ganops("rollback", "--reason", "oops").stdout.strip().endswith(f"v{first['version']}")

    missing = ganops("promote", "9", "--reason", "typo")
    assert missing.returncode == 2
    assert (
        missing.stderr.strip()
        == "error: ganops-generator has no version 9; versions: 1, 2 (see `ganops registry list`)"
    )


def test_mlflow_models_serve_serves_the_champion(exported, sqlite_registry, tmp_path):
    register(sqlite_registry, with_fid(exported, 20.0))
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            "models:/ganops-generator@champion",
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        # mlflow execs `uvicorn` by name: the venv's bin must be on PATH.
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"},
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "serve.log", "w"),
    )
    try:
        body = json.dumps({"inputs": {"z": np.zeros((3, 8)).tolist()}}).encode()
        deadline = time.monotonic() + 120
        while True:
            try:
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/invocations", body, {"Content-Type": "application/json"}
                )
                reply = json.loads(urllib.request.urlopen(request, timeout=10).read())
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    pytest.fail(
                        f"mlflow models serve did not answer: {(tmp_path / 'serve.log').read_text()[-2000:]}"
                    )
                time.sleep(0.5)
        assert np.asarray(reply["predictions"]["images"]).shape == (3, 1, 16, 16)
    finally:
        server.terminate()
        server.wait(timeout=30)
