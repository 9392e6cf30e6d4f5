"""The whole DAG under real DVC in a temporary git repository, with tiny params."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from ganops.config import parse_params

from conftest import tiny_params, write_params

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def sh(cmd: list[str], cwd: Path, env: dict) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def ran(output: str) -> list[str]:
    return re.findall(r"Running stage '(\w+)'", output)


@pytest.fixture(scope="module")
def project(tiny_idx, tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy(REPO / "dvc.yaml", root)
    shutil.copy(REPO / ".gitignore", root)
    # Every key spelled out, as in the repository's params.yaml, so `dvc exp run -S` can set any of them.
    write_params(root / "params.yaml", parse_params(tiny_params(tiny_idx)).model_dump())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["DVC_NO_ANALYTICS"] = "1"
    for cmd in (
        ["git", "init", "-q"],
        ["git", "config", "user.email", "ci@example.com"],
        ["git", "config", "user.name", "ci"],
        ["dvc", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "init"],
    ):
        sh(cmd, root, env)
    return root, env


def test_repro_runs_the_dag_then_nothing(project):
    root, env = project
    first = sh(["dvc", "repro"], root, env)
    assert ran(first) == ["prepare", "evaluator", "train", "evaluate", "export", "register"]

    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert metrics["fid_domain"] > metrics["floor"]["fid_domain"] >= 0
    assert metrics["counts"]["generated"] == 256
    registry = json.loads((root / "reports/registry.json").read_text())
    assert registry["version"] == "1" and registry["aliases"] == ["challenger", "champion"]
    assert (root / "mlflow.db").exists()
    sidecar = json.loads((root / "models/generator.onnx.json").read_text())
    assert sidecar["parity"]["max_abs_diff"] <= 1e-3

    second = sh(["dvc", "repro"], root, env)
    assert ran(second) == []
    assert "Data and pipelines are up to date" in second
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "baseline run"], root, env)


def test_changing_epochs_reruns_train_and_after_only(project):
    root, env = project
    sh(["dvc", "repro"], root, env)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["epochs"] = 3
    write_params(root / "params.yaml", params)

    output = sh(["dvc", "repro"], root, env)
    assert ran(output) == ["train", "evaluate", "export", "register"]
    assert "resuming from step 32" in output  # the 2-epoch run's final checkpoint is continued
    registry = json.loads((root / "reports/registry.json").read_text())
    assert registry["version"] == "2"
    assert registry["promoted"] == ("champion" in registry["aliases"])

    diff = json.loads(sh(["dvc", "metrics", "diff", "--json"], root, env))
    assert "fid_domain" in diff["reports/metrics.json"]  # compared with the baseline commit


def test_exp_run_accepts_a_param_from_every_section(project):
    root, env = project
    overrides = [
        "seed=11",
        "data.max_train=448",
        "evaluator.min_accuracy=0.3",
        "model.latent_dim=6",
        "train.epochs=1",
        "evaluate.num_samples=200",
        "export.opset=17",
        "register.experiment=exp-test",
        "schedule.cron=0 4 * * *",
    ]
    sh(
        ["dvc", "exp", "run", "-n", "every-section", *[arg for o in overrides for arg in ("-S", o)]],
        root,
        env,
    )
    table = json.loads(sh(["dvc", "exp", "show", "--json"], root, env))
    rows = [exp for commit in table for exp in (commit.get("experiments") or []) for exp in exp["revs"]]
    row = next(r for r in rows if r.get("name") == "every-section")
    metrics = row["data"]["metrics"]["reports/metrics.json"]["data"]
    assert {"fid_domain", "kid_domain", "fid_domain_floor_ratio"} <= metrics.keys()
    assert row["data"]["params"]["params.yaml"]["data"]["train"]["epochs"] == 1

    html = root / "plots"
    sh(["dvc", "plots", "show", "-o", str(html)], root, env)
    page = (html / "index.html").read_text()
    assert "loss_d" in page and "Adversarial losses per step" in page
