"""Real Prefect flow runs (Prefect's test harness with a temporary API) over the tiny pipeline."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from ganops.stages import DVC_FILES
from ganops.stages import STAGES as PIPELINE_STAGES

from conftest import copy_from_repo, stages_dvc_ran, tiny_params, write_params

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prefect_api(tmp_path_factory):
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="module")
def flow_module():
    spec = importlib.util.spec_from_file_location("ganops_flow", REPO / "pipelines" / "flow.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ganops_flow"] = module  # deployments look their flow up by module name
    spec.loader.exec_module(module)
    return module


@pytest.fixture()
def project(tiny_idx, tmp_path, monkeypatch):
    shutil.copytree(
        REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    copy_from_repo(tmp_path, *DVC_FILES, ".dvcignore")
    write_params(tmp_path / "params.yaml", tiny_params(tiny_idx))
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=tmp_path, check=True, env=_dvc_env())
    return tmp_path


def _dvc_env() -> dict:
    return {**os.environ, "DVC_NO_ANALYTICS": "1"}


def dvc_repro(project: Path) -> list[str]:
    result = subprocess.run(
        ["dvc", "repro"], cwd=project, capture_output=True, text=True, timeout=600, env=_dvc_env()
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return stages_dvc_ran(result.stdout)


def set_lr(project: Path, lr: float) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["lr"] = lr
    write_params(project / "params.yaml", params)


def ran(outcome: dict) -> list[str]:
    return [name for name, hit in outcome["cached"].items() if not hit]


def task_states(flow_state, timeout: float = 60) -> dict[str, str]:
    """The state each stage's task run of this flow run ended in, as Prefect's API records it:
    'Cached' when Prefect took its result under the stage's key, 'Completed' when the task ran.
    Task states reach the API as events, recorded a moment later: wait until every stage's is final."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    flow_runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_state.state_details.flow_run_id]))
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_task_runs(flow_run_filter=flow_runs)
            states = {run.name: run.state for run in runs}
            if sorted(states) == sorted(ALL) and all(s is not None and s.is_final() for s in states.values()):
                return {name: state.name for name, state in states.items()}
            assert time.monotonic() < deadline, {name: s and s.name for name, s in states.items()}
            time.sleep(0.5)


def expected_states(outcome: dict) -> dict[str, str]:
    return {name: "Completed" if name in ran(outcome) else "Cached" for name in ALL}


ALL = list(PIPELINE_STAGES)


def test_second_run_is_all_cache_hits_and_a_changed_lr_reruns_train_onwards(
    prefect_api, flow_module, project
):
    first = flow_module.pipeline(root=str(project))
    assert ran(first) == ALL
    assert first["results"]["register"]["aliases"] == ["challenger", "champion"]
    assert (project / "mlflow.db").exists() and (project / "mlruns").is_dir()

    second_state = flow_module.pipeline(root=str(project), return_state=True)
    second = second_state.result()
    assert ran(second) == ["validate"]  # always runs: params checked, raw data re-fingerprinted
    # ... and every other stage's result is Prefect's, found under the stage's key (stagekeys)
    assert task_states(second_state) == expected_states(second)
    assert second["results"] == first["results"]

    set_lr(project, 1e-3)
    third_state = flow_module.pipeline(root=str(project), return_state=True)
    third = third_state.result()
    assert ran(third) == ["validate", "train", "evaluate", "export", "register"]
    assert third["results"]["register"]["version"] == "2"
    assert task_states(third_state) == expected_states(third)  # prepare, evaluator, evalset: Cached


def test_flow_and_dvc_share_their_work_through_dvc_lock(prefect_api, flow_module, project):
    assert dvc_repro(project) == ALL
    after_dvc = flow_module.pipeline(root=str(project))
    assert ran(after_dvc) == ["validate"]  # DVC's work is a hit: nothing retrained, nothing re-registered
    assert after_dvc["results"]["register"]["version"] == "1"

    set_lr(project, 1e-3)
    flow_module.pipeline(root=str(project))  # records what it ran in dvc.lock ...
    assert dvc_repro(project) == ["validate"]  # ... so DVC skips it


def test_outputs_another_runner_rewrote_are_never_taken_from_the_cache(prefect_api, flow_module, project):
    original = (project / "params.yaml").read_text()
    flow_module.pipeline(root=str(project))  # Prefect has results for lr A
    set_lr(project, 1e-3)
    dvc_repro(project)  # DVC rewrites the outputs with lr B
    (project / "params.yaml").write_text(original)
    again = flow_module.pipeline(root=str(project))  # same key as the first run, other outputs on disk
    assert ran(again) == ["validate", "train", "evaluate", "export", "register"]


def test_deleted_outputs_are_rebuilt_despite_the_cache(prefect_api, flow_module, project):
    flow_module.pipeline(root=str(project))
    (project / "models" / "generator.onnx").unlink()
    again = flow_module.pipeline(root=str(project))
    assert "export" in ran(again) and "train" not in ran(again)
    assert (project / "models" / "generator.onnx").exists()


def test_invalid_params_fail_in_the_first_task_with_the_cli_message(prefect_api, flow_module, project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["lr"] = -1
    write_params(project / "params.yaml", params)
    from ganops.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train.lr: must be > 0, got -1"):
        flow_module.pipeline(root=str(project))
    assert not (project / "data" / "prepared").exists()


def test_markdown_artifact_has_metrics_and_decision(prefect_api, flow_module, project):
    flow_module.pipeline(root=str(project))
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ganops-pipeline"]))
        )
    text = artifacts[-1].data
    assert "| fid_domain |" in text and "**Registry:** ganops-generator v" in text

    # Any task runs in the same flow, data-parallel too: a restoration reuses prepare and the
    # evaluator, its train task launches 2 workers, and its report puts the GAN beside the
    # classical baseline.
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["train"]["processes"] = 2
    write_params(project / "params.yaml", {**params, "task": "superres"})
    restored = flow_module.pipeline(root=str(project))
    assert ran(restored) == ["validate", "evalset", "train", "evaluate", "export", "register"]
    assert restored["results"]["register"]["model_name"] == "ganops-superres"
    assert json.loads((project / "logs/train.json").read_text())["processes"] == 2
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["ganops-pipeline"]))
        )
    newest = max(artifacts, key=lambda artifact: artifact.created)  # the list is not in creation order
    assert "| psnr_y, bicubic baseline |" in newest.data


def test_deployment_runs_on_the_schedule_from_params(flow_module, project):
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["schedule"] = {"cron": "15 2 * * 1", "timezone": "Europe/Paris"}
    write_params(project / "params.yaml", params)
    deployment = flow_module.deployment(project)
    (schedule,) = deployment.schedules
    assert schedule.schedule.cron == "15 2 * * 1" and schedule.schedule.timezone == "Europe/Paris"
    assert deployment.parameters == {"root": str(project), "params_file": "params.yaml"}


def test_prefect_yaml_declares_the_same_flow_and_default_schedule(flow_module):
    declared = yaml.safe_load((REPO / "pipelines" / "prefect.yaml").read_text())["deployments"][0]
    assert declared["entrypoint"] == "pipelines/flow.py:pipeline"
    default = yaml.safe_load((REPO / "params.yaml").read_text())["schedule"]
    assert declared["schedules"][0] == {"cron": default["cron"], "timezone": default["timezone"]}
