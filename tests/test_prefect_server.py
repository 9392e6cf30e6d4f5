"""Prefect for real: `prefect server start`, a process work pool, `prefect deploy` from
pipelines/prefect.yaml, a worker, and two triggered runs of the tiny pipeline, all on loopback.

Checks what a team relies on: the run completes with every stage, the deployment's next scheduled
runs follow params.yaml's schedule.cron, and the deployment's concurrency limit keeps a second run
from interleaving with the first on the same workspace.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from cronsim import CronSim

from ganops.stages import DVC_FILES
from ganops.stages import STAGES as PIPELINE_STAGES

from conftest import copy_from_repo, tiny_params, write_params

REPO = Path(__file__).resolve().parents[1]
STAGES = list(PIPELINE_STAGES)
FLOW, DEPLOYMENT, POOL = "ganops-pipeline", "ganops-retrain", "ganops-process"
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def project(tiny_idx, tmp_path_factory) -> Path:
    """A checkout of the project with tiny params: what the worker runs the flow in."""
    root = tmp_path_factory.mktemp("workspace")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for folder in ("src", "pipelines"):
        shutil.copytree(REPO / folder, root / folder, ignore=ignore)
    copy_from_repo(root, *DVC_FILES, ".dvcignore")
    write_params(root / "params.yaml", tiny_params(tiny_idx))
    subprocess.run(["dvc", "init", "--no-scm", "-q"], cwd=root, check=True)
    return root


@pytest.fixture(scope="module")
def env(project, tmp_path_factory) -> dict[str, str]:
    """What every Prefect process here sees: its own PREFECT_HOME and the server on a free port."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_"))}
    return {
        **clean,
        "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect-home")),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",  # default 60: schedule within the test
        "PREFECT_WORKER_QUERY_SECONDS": "2",  # default 15: pick runs up quickly
        "GANOPS_PROJECT": str(project),
        "PYTHONPATH": str(project / "src"),
        "DVC_NO_ANALYTICS": "1",
        "PYTHONUNBUFFERED": "1",
    }


def prefect(env: dict, *args: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"prefect {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def wait_for(check, seconds: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            found = check()
            if found:
                return found
        except httpx.TransportError:
            pass
        time.sleep(1)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    pytest.fail(f"{what}: not within {seconds:.0f} s. {tail}")


class Stack:
    """The running server's API (``get``/``post`` relative to /api) and the server's and worker's logs."""

    def __init__(self, client: httpx.Client, server_log: Path, worker_log: Path) -> None:
        self.get, self.post = client.get, client.post
        self.server_log, self.worker_log = server_log, worker_log


@pytest.fixture(scope="module")
def api(env, project):
    """`prefect server start`, a process work pool, the deployment, and a worker; yields an HTTP client."""
    home = Path(env["PREFECT_HOME"])
    port = env["PREFECT_API_URL"].split(":")[-1].split("/")[0]
    server_log, worker_log = home / "server.log", home / "worker.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", port],
        env=env,
        stdout=open(server_log, "w"),
        stderr=subprocess.STDOUT,
    )
    worker = None
    client = httpx.Client(base_url=env["PREFECT_API_URL"], timeout=30)
    try:
        wait_for(lambda: client.get("/health").status_code == 200, 180, "prefect server", server_log)
        prefect(env, "work-pool", "create", POOL, "--type", "process", cwd=project)
        prefect(env, "deploy", "--prefect-file", "pipelines/prefect.yaml", "--all", cwd=project)
        worker = subprocess.Popen(
            [sys.executable, "-m", "prefect", "worker", "start", "--pool", POOL, "--type", "process"],
            cwd=project,
            env=env,
            stdout=open(worker_log, "w"),
            stderr=subprocess.STDOUT,
        )
        yield Stack(client, server_log, worker_log)
    finally:
        client.close()
        for process in (worker, server):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()


def deployment(api) -> dict:
    response = api.get(f"/deployments/name/{FLOW}/{DEPLOYMENT}")
    response.raise_for_status()
    return response.json()


def scheduled_runs(api, deployment_id: str) -> list[dict]:
    body = {
        "deployments": {"id": {"any_": [deployment_id]}},
        "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
        "sort": "EXPECTED_START_TIME_ASC",
    }
    response = api.post("/flow_runs/filter", json=body)
    response.raise_for_status()
    return [run for run in response.json() if run["auto_scheduled"]]


def trigger(env: dict, project: Path) -> str:
    out = prefect(env, "deployment", "run", f"{FLOW}/{DEPLOYMENT}", cwd=project)
    return re.search(r"UUID:\s*([0-9a-f-]{36})", out).group(1)


def finished(api, run_id: str) -> dict | None:
    run = api.get(f"/flow_runs/{run_id}").json()
    return run if run["state_type"] in FINAL else None


def stages_line(api, run_id: str) -> str:
    """The 'Stages:' line of the run's markdown artifact: each stage, ran or cached."""
    body = {"artifacts": {"key": {"any_": ["ganops-pipeline"]}, "flow_run_id": {"any_": [run_id]}}}
    [artifact] = api.post("/artifacts/filter", json=body).json()
    return re.search(r"\*\*Stages:\*\* (.*)", artifact["data"]).group(1)


def state_names(api, run_id: str) -> list[str]:
    states = api.get("/flow_run_states/", params={"flow_run_id": run_id}).json()
    return [s["name"] for s in sorted(states, key=lambda s: s["timestamp"])]


def test_deployment_is_scheduled_from_params_and_limited_to_one_run(api, project):
    from ganops.config import load_params

    schedule = load_params(project / "params.yaml").schedule
    found = deployment(api)
    assert found["work_pool_name"] == POOL and found["entrypoint"] == "pipelines/flow.py:pipeline"
    assert found["parameters"] == {"root": str(project), "params_file": "params.yaml"}
    assert found["global_concurrency_limit"]["limit"] == 1
    assert found["concurrency_options"]["collision_strategy"] == "ENQUEUE"

    def upcoming():
        return scheduled_runs(api, found["id"])

    try:
        runs = wait_for(upcoming, 60, "the server's scheduler to create the deployment's next runs")
    except pytest.fail.Exception:
        log = api.server_log.read_text()
        if "please supply a bulk_dml decorated function" in log:
            pytest.fail(
                "Prefect's scheduler crashes on every loop: prefect 3.8.8 inserts scheduled runs with a "
                "'state' key that SQLAlchemy 2.1 refuses (InvalidRequestError: bulk_dml). Install "
                "sqlalchemy<2.1 (pyproject.toml pins it); until then no schedule ever fires"
            )
        raise
    zone = ZoneInfo(schedule.timezone)
    expected = CronSim(schedule.cron, datetime.now(zone))
    starts = [datetime.fromisoformat(r["expected_start_time"]) for r in runs[:3]]
    assert starts == [next(expected) for _ in starts]


def test_a_triggered_run_completes_every_stage_and_a_second_waits_its_turn(api, env, project):
    triggered = [trigger(env, project), trigger(env, project)]
    done = [
        wait_for(lambda run_id=run_id: finished(api, run_id), 420, f"flow run {run_id}", api.worker_log)
        for run_id in triggered
    ]
    assert [run["state_type"] for run in done] == ["COMPLETED", "COMPLETED"], api.worker_log.read_text()
    # Whichever got the slot first ran; the other waited (not necessarily in trigger order).
    done.sort(key=lambda run: run["start_time"])
    first, second = (run["id"] for run in done)

    # Every stage ran in the first run; the second found the workspace up to date (dvc.lock).
    assert stages_line(api, first) == ", ".join(f"{name} (ran)" for name in STAGES)
    assert stages_line(api, second) == "validate (ran), " + ", ".join(
        f"{name} (cached)" for name in STAGES[1:]
    )
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    assert math.isfinite(metrics["fid_domain"]) and metrics["fid_domain"] > 0
    registry = json.loads((project / "reports" / "registry.json").read_text())
    assert registry["version"] == "1" and "champion" in registry["aliases"]
    assert (project / "models" / "generator.onnx").stat().st_size > 0

    # The concurrency limit: the second run waited for a slot and started after the first ended.
    assert "AwaitingConcurrencySlot" in state_names(api, second)
    first_end, second_start = (
        datetime.fromisoformat(done[0]["end_time"]),
        datetime.fromisoformat(done[1]["start_time"]),
    )
    assert second_start >= first_end
