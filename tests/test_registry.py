import json
import os
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
from ganops.errors import RegistryError, TransientRegistryError
from ganops.files import write_json
from ganops.models import ArchSpec, build_generator
from ganops.models.io import save_generator
from ganops.registry.client import open_registry, resolve_tracking_uri, workspace_path
from ganops.registry.gate import Candidate, decide
from ganops.stages import Layout
from ganops.stages.export import run as export
from ganops.stages.register import run as register
from mlflow_helpers import mlflow_server
from serve_helpers import free_port

from conftest import write_params

REPO = Path(__file__).resolve().parents[1]
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


def psnr(version: str, score: float, ci95=None, evaluation: str = "superres:abc") -> Candidate:
    return Candidate(version, score, SHA, ci95, metric="psnr_y", higher_is_better=True, evaluation=evaluation)


def test_gate_promotes_a_higher_psnr_with_intervals_apart():
    champion = psnr("1", 30.0, (29.5, 30.5))
    assert decide(psnr("2", 31.0, (30.6, 31.4)), champion).promote
    assert not decide(psnr("2", 30.8, (30.4, 31.2)), champion).promote  # overlapping
    assert not decide(psnr("2", 29.0), psnr("1", 30.0)).promote  # lower PSNR is worse


def test_gate_never_compares_across_tasks_or_evaluation_sets():
    fid_champion = Candidate("1", 10.0, SHA)
    cross_task = decide(psnr("2", 40.0), fid_champion)
    assert not cross_task.promote and "another task or evaluation set" in cross_task.reason
    other_set = decide(psnr("2", 40.0, evaluation="superres:def"), psnr("1", 20.0))
    assert not other_set.promote and "not comparable" in other_set.reason


def test_a_restoration_candidate_survives_a_round_trip_through_tags():
    candidate = psnr("4", 27.5, (27.0, 28.0))
    assert Candidate.from_tags("4", candidate.tags()) == candidate
    assert "primary_metric" not in Candidate("3", 7.25, SHA).tags()  # sampling versions keep their tags


@pytest.fixture()
def exported(tmp_path):
    """A project folder with everything register reads: ONNX + sidecar, metrics, a grid, a loss history."""
    spec = ArchSpec(arch="dcgan", latent_dim=8, image_size=16, channels=1, g_width=4, d_width=4)
    layout = Layout(tmp_path)
    save_generator(layout.generator, build_generator(spec).eval(), spec, step=1, note="test")
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


def test_registry_gating_with_a_real_mlflow_registry(exported, sqlite_registry, capfd):
    params = sqlite_registry
    first = register(params, with_fid(exported, 20.0))
    # MLflow's ONNX flavor asks for CUDA only where torch sees a GPU: no onnxruntime error lines on CPU.
    err = capfd.readouterr().err
    assert "E:onnxruntime" not in err and "Failed to load library" not in err
    providers = mlflow.models.Model.load("models:/ganops-generator/1").flavors["onnx"]["providers"]
    assert ("CUDAExecutionProvider" in providers) == torch.cuda.is_available()
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
    assert tuple(close["challenger"]["ci95"]) == (17.5, 20.5)
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
    write_json(
        exported.timings("train"), {"train_seconds": 12.5, "images_per_second": 800.0, "seconds": 14.0}
    )
    write_json(exported.timings("evaluate"), {"seconds": 3.25})
    record = register(sqlite_registry, with_fid(exported, 20.0))
    client = mlflow.MlflowClient()
    parent = client.get_run(record["run_id"])
    timings = {k: v for k, v in parent.data.metrics.items() if k.startswith("timing.")}
    assert timings == {
        "timing.train_seconds": 14.0,
        "timing.train_loop_seconds": 12.5,
        "timing.images_per_second": 800.0,
        "timing.evaluate_seconds": 3.25,
    }
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


def test_gate_never_promotes_a_non_finite_fid():
    for fid in (float("nan"), float("inf")):
        decision = decide(Candidate("2", fid, SHA), None)
        assert not decision.promote and "not a finite number" in decision.reason
    assert decide(Candidate("2", 9.0, SHA), Candidate("1", float("nan"), SHA)).promote


def test_a_nan_fid_is_registered_but_never_promoted(exported, sqlite_registry):
    first = register(sqlite_registry, with_fid(exported, 20.0))
    broken = register(sqlite_registry, with_fid(exported, float("nan")))
    assert not broken["promoted"] and broken["aliases"] == ["challenger"]
    assert "fid_domain is nan, not a finite number" in broken["reason"]
    assert open_registry(sqlite_registry.register).candidate("champion").version == first["version"]


def fail_once(monkeypatch, method: str, on_call: int = 1) -> list:
    """Make one MlflowClient method raise a connection error on its ``on_call``-th call: an outage
    midway through a registration, against a real registry."""
    real = getattr(mlflow.MlflowClient, method)
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == on_call:
            raise ConnectionError(f"simulated outage in {method}: connection refused")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(mlflow.MlflowClient, method, flaky)
    return calls


def pipeline_runs(status: str | None = None) -> list:
    client = mlflow.MlflowClient()
    runs = client.search_runs(
        [client.get_experiment_by_name("gate-test").experiment_id], "tags.`ganops.stage` = 'pipeline'"
    )
    return [r for r in runs if status is None or r.info.status == status]


def test_a_retry_completes_the_version_an_outage_left_half_done(exported, sqlite_registry, monkeypatch):
    with_fid(exported, 20.0)
    fail_once(monkeypatch, "set_registered_model_alias")  # the first alias move dies
    with pytest.raises(TransientRegistryError, match="simulated outage"):
        register(sqlite_registry, exported)
    registry = open_registry(sqlite_registry.register)
    [half] = registry.versions()
    assert half["tags"]["ganops.state"] == "pending" and half["aliases"] == []
    assert half["tags"]["onnx_sha256"] and half["tags"]["fid_domain"] == "20.0"  # tagged at creation
    assert half["tags"]["gate_decision"] == "promoted: no champion yet"
    assert registry.history("challenger") == []  # the interrupted move reads as not done

    retry = register(sqlite_registry, exported)
    [done] = registry.versions()
    assert retry["version"] == done["version"] == half["version"] and retry["promoted"]
    assert done["tags"]["ganops.state"] == "complete" and done["aliases"] == ["challenger", "champion"]
    assert registry.history("challenger") == registry.history("champion") == ["1"]
    assert not [t for t in registry.client.get_registered_model(registry.name).tags if t.endswith(".pending")]
    assert len(pipeline_runs()) == 1 and retry["run_id"] == half["run_id"]
    logged_model = registry.client.get_logged_model(done["tags"]["ganops.model_id"])
    assert json.loads(logged_model.tags["mlflow.modelVersions"]) == [{"name": registry.name, "version": "1"}]

    again = register(sqlite_registry, exported)  # a complete registration: found, nothing moves
    assert again == retry and len(registry.versions()) == 1


def test_a_retry_registers_the_run_an_outage_left_unregistered(exported, sqlite_registry, monkeypatch):
    with_fid(exported, 20.0)
    fail_once(monkeypatch, "create_model_version")
    with pytest.raises(TransientRegistryError):
        register(sqlite_registry, exported)
    assert open_registry(sqlite_registry.register).versions() == []
    [logged] = pipeline_runs("FINISHED")
    retry = register(sqlite_registry, exported)
    assert retry["run_id"] == logged.info.run_id and len(pipeline_runs()) == 1  # not logged twice
    assert retry["version"] == "1" and retry["aliases"] == ["challenger", "champion"]


def test_a_retry_ends_the_runs_a_crashed_attempt_left_running(exported, sqlite_registry, monkeypatch):
    with_fid(exported, 20.0)
    fail_once(monkeypatch, "set_terminated")  # the first nested run cannot be ended: it stays RUNNING
    with pytest.raises(TransientRegistryError):
        register(sqlite_registry, exported)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name("gate-test").experiment_id
    [stale] = [r for r in client.search_runs([experiment]) if r.info.status == "RUNNING"]
    retry = register(sqlite_registry, exported)
    assert client.get_run(stale.info.run_id).info.status == "KILLED"
    assert not [r for r in client.search_runs([experiment]) if r.info.status == "RUNNING"]
    assert retry["version"] == "1" and pipeline_runs("FINISHED")[0].info.run_id == retry["run_id"]


def test_an_alias_move_cut_off_midway_keeps_alias_and_history_together(
    exported, sqlite_registry, monkeypatch
):
    first = register(sqlite_registry, with_fid(exported, 20.0))
    second = register(sqlite_registry, with_fid(exported, 25.0))
    registry = open_registry(sqlite_registry.register)
    # Cut off before the alias moves: nothing happened.
    fail_once(monkeypatch, "set_registered_model_alias")
    with pytest.raises(ConnectionError):
        registry.move_alias("champion", second["version"], "by hand")
    assert registry.candidate("champion").version == first["version"]
    assert registry.history("champion") == [first["version"]]
    # Cut off after the alias moved, before its history was written: the recorded intent is the history.
    fail_once(monkeypatch, "set_registered_model_tag", on_call=2)
    with pytest.raises(ConnectionError):
        registry.move_alias("champion", second["version"], "by hand")
    assert registry.candidate("champion").version == second["version"]
    assert registry.history("champion") == [first["version"], second["version"]]
    assert registry.rollback("champion", "the move was a mistake") == first["version"]
    assert registry.history("champion") == [first["version"]]


def test_changing_only_register_params_finds_the_model_already_registered(exported, sqlite_registry):
    first = register(sqlite_registry, with_fid(exported, 20.0))
    registered = exported.registered.read_bytes()
    # What DVC reruns register for when only the register section changed: how and where, not what.
    for changed in ({"promotion_margin": 0.5}, {"experiment": "another"}, {"challenger_alias": "candidate"}):
        params = parse_params({"register": {"experiment": "gate-test", **changed}})
        again = register(params, exported)
        assert again == first, changed
        assert exported.registered.read_bytes() == registered  # DVC's output: the same bytes
    assert [v["version"] for v in open_registry(sqlite_registry.register).versions()] == ["1"]
    # Params that shape the model are part of what is registered: the same files under them are another.
    other = register(parse_params({"register": {"experiment": "gate-test"}, "train": {"lr": 1e-3}}), exported)
    assert other["version"] == "2"


def test_a_temporary_dvc_experiment_copy_maps_to_its_workspace(tmp_path, monkeypatch):
    workspace = tmp_path / "ws"
    (workspace / ".dvc").mkdir(parents=True)
    (workspace / ".dvc" / "config").touch()  # as `dvc init` leaves it
    copy = workspace / ".dvc" / "tmp" / "exps" / "standalone" / "tmpab12cd"  # what DVC 3.67 makes
    (copy / ".git").mkdir(parents=True)
    assert workspace_path(copy) == workspace
    assert workspace_path(copy / "reports" / "x.json") == workspace / "reports" / "x.json"
    assert workspace_path(workspace / "mlflow.db") == workspace / "mlflow.db"
    cache = workspace / ".dvc" / "tmp" / "exps" / "cache"  # no git clone: not an experiment's copy
    cache.mkdir()
    assert workspace_path(cache) == cache
    lookalike = tmp_path / "not-dvc" / ".dvc" / "tmp" / "exps" / "run" / "tmp1"  # no DVC repository above
    (lookalike / ".git").mkdir(parents=True)
    assert workspace_path(lookalike) == lookalike

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri(None, copy) == f"sqlite:///{workspace / 'mlflow.db'}"
    assert resolve_tracking_uri("sqlite:///reg/m.db", copy) == f"sqlite:///{workspace / 'reg' / 'm.db'}"
    assert resolve_tracking_uri(None, workspace) == f"sqlite:///{workspace / 'mlflow.db'}"
    assert resolve_tracking_uri("http://127.0.0.1:5000", copy) == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///mlflow.db")
    assert resolve_tracking_uri(None, copy) == f"sqlite:///{workspace / 'mlflow.db'}"


def test_dvc_exp_run_temp_registers_into_the_workspace_registry(exported, monkeypatch):
    """`dvc exp run --temp` runs register in a copy under .dvc/tmp/exps/ that DVC deletes afterwards:
    the version must land in the workspace's mlflow.db, and the run must say so."""
    root = with_fid(exported, 20.0).root
    write_params(root / "params.yaml", parse_params({"register": {"experiment": "temp-exp"}}).model_dump())
    stage = {
        "cmd": "ganops register",
        "deps": ["models/generator.onnx", "models/generator.onnx.json", "reports/metrics.json"],
        "params": ["seed", "register"],
        "outs": ["reports/registered.json"],
    }
    (root / "dvc.yaml").write_text(json.dumps({"stages": {"register": stage}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(DVC_NO_ANALYTICS="1", PYTHONPATH=str(REPO / "src"))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # ganops and dvc
    for cmd in (
        ["git", "init", "-q"],
        ["dvc", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", "commit", "-qm", "project"],
        ["dvc", "exp", "run", "--temp"],
    ):
        done = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"{cmd}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    output = done.stdout + done.stderr
    assert "temporary DVC experiment in" in output and f"sqlite:///{root / 'mlflow.db'}" in output
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    [version] = open_registry(parse_params({}).register).versions()
    assert version["aliases"] == ["challenger", "champion"] and version["tags"]["ganops.state"] == "complete"
    assert not list((root / ".dvc" / "tmp" / "exps").rglob("mlflow.db"))  # nothing left in a copy


def test_registry_that_is_down_fails_clearly_and_keeps_outputs(exported, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard port: nothing listens
    write_json(exported.registry, {"version": "previous"})
    with pytest.raises(RegistryError, match=r"MLflow registry at http://127.0.0.1:9 failed"):
        register(parse_params({}), with_fid(exported, 20.0))
    assert json.loads(exported.registry.read_text()) == {"version": "previous"}


def test_registry_cli_names_a_registry_that_is_down_in_one_line(tmp_path):
    write_params(tmp_path / "params.yaml", {})
    env = {**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}
    done = subprocess.run(
        [sys.executable, "-m", "ganops", "registry", "list"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: MLflow registry at http://127.0.0.1:9 failed: ")
    assert len(done.stderr.strip().splitlines()) == 1


def test_concurrent_registrations_of_the_same_files_give_one_version(exported, tmp_path):
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
    assert [v["version"] for v in versions] == ["1"]
    assert versions[0]["aliases"] == ["challenger", "champion"]
    assert versions[0]["tags"]["ganops.state"] == "complete"
    assert json.loads(exported.registry.read_text())["version"] == "1"


@pytest.fixture(scope="module")
def tracking_server(tmp_path_factory):
    """A real `mlflow server` process on loopback: SQLite backend, proxied local artifact store."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    with mlflow_server(folder, f"sqlite:///{folder / 'server.db'}") as url:
        yield url


def test_registration_through_a_tracking_server(exported, tracking_server, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    monkeypatch.chdir(tmp_path)
    params = parse_params({"register": {"experiment": "server"}})
    first = register(params, with_fid(exported, 20.0))
    assert first["tracking_uri"] == tracking_server and "champion" in first["aliases"]
    worse = register(params, with_fid(exported, 30.0))
    assert not worse["promoted"]
    assert register(params, exported)["version"] == worse["version"]  # the same files: found, not re-made
    assert len(open_registry(params.register).versions()) == 2
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
    holders = [line for line in ganops("list").stdout.splitlines() if line.startswith("@")]
    assert holders[0].startswith("@challenger -> v2: ") and "newest candidate" in holders[0]
    assert holders[1].startswith("@champion -> v2: ") and holders[1].endswith(
        "promoted by hand: preferred by the art team"
    )
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
