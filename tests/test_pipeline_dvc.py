"""The whole DAG under real DVC in a temporary git repository, with tiny params."""

from __future__ import annotations

import gzip
import json
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from ganops.config import parse_params
from ganops.stages import DVC_FILES, STAGES
from serve_helpers import serve_process

from conftest import copy_from_repo, stages_dvc_ran, tiny_params, write_paired_folder, write_params

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def sh(cmd: list[str], cwd: Path, env: dict) -> str:
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(cmd)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def ran(output: str) -> list[str]:
    return stages_dvc_ran(output)


STAGES = list(STAGES)


def new_project(root: Path, params: dict) -> tuple[Path, dict]:
    """A git + DVC repository holding a copy of the code, which is also the code its stages run."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(REPO / "src", root / "src", ignore=ignore)
    shutil.copytree(REPO / "pipelines", root / "pipelines", ignore=ignore)  # the Prefect flow, as in a clone
    copy_from_repo(root, *DVC_FILES, ".gitignore", ".dvcignore")
    # Every key spelled out, as in the repository's params.yaml, so `dvc exp run -S` can set any of them.
    write_params(root / "params.yaml", parse_params(params).model_dump())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["DVC_NO_ANALYTICS"] = "1"
    env["PYTHONPATH"] = str(root / "src")  # a change to the copy is a change to what runs
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


@pytest.fixture(scope="module")
def project(tiny_idx, tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    shutil.copytree(tiny_idx, root / "raw")  # raw data the tests can change
    return new_project(root, tiny_params(root / "raw"))


def test_repro_runs_the_dag_then_only_validate(project):
    root, env = project
    first = sh(["dvc", "repro"], root, env)
    assert ran(first) == STAGES

    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert metrics["fid_domain"] > metrics["floor"]["fid_domain"] >= 0
    assert metrics["counts"]["generated"] == 256
    registry = json.loads((root / "reports/registry.json").read_text())
    assert registry["version"] == "1" and registry["aliases"] == ["challenger", "champion"]
    assert (root / "mlflow.db").exists()
    sidecar = json.loads((root / "models/generator.onnx.json").read_text())
    assert (
        sidecar["parity"]["passed"]
        and json.loads((root / "logs/export.json").read_text())["parity_max_abs_diff"] <= 1e-3
    )

    second = sh(["dvc", "repro"], root, env)
    assert ran(second) == ["validate"]  # always runs; its records did not change, so nothing else did
    sh(["git", "add", "-A"], root, env)
    sh(["git", "commit", "-qm", "baseline run"], root, env)
    assert sh(["git", "status", "--porcelain"], root, env) == ""


def test_restoration_tasks_reuse_prepare_and_the_evaluator_and_register_their_own_models(project, tmp_path):
    """`dvc exp run -S task=...` from the sampling pipeline's workspace, as benchmarks/restoration.py runs
    it: each a version of ganops-<task> whose metrics hold the GAN's and the baseline's numbers side by side;
    translate from a folder of A/ and B/ pairs (superres and colorize run the same stages: tests/test_tasks.py)."""
    root, env = project
    results = tmp_path / "restoration.json"
    bench = [sys.executable, str(REPO / "benchmarks/restoration.py"), "--workspace", str(root), "--temp"]
    pairs = write_paired_folder(tmp_path / "pairs", 120)  # A/ and B/: translate pairs them by itself
    paired = f"translate:data.source=imagefolder,data.root={pairs}"
    out = sh([*bench, "--json", str(results), "--experiment", "inpaint", paired], root, env)
    assert "| inpaint |" in out and "(opencv_telea)" in out and "(identity)" in out
    from mlflow import MlflowClient  # the workspace's registry: a temporary experiment registers there

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    baselines = ("opencv_telea", "identity")
    for run, baseline in zip(json.loads(results.read_text()), baselines, strict=True):
        task, metrics = run["experiment"].partition(":")[0], run["metrics"]
        new_data = (
            ["prepare", "evaluator"] if baseline == "identity" else []
        )  # the pairs, and their evaluator
        assert run["ran"] == ["validate", *new_data, "evalset", "train", "evaluate", "export", "register"]
        primary = metrics["primary"]["metric"]
        assert metrics["task"] == task and metrics["baseline"]["method"] == baseline
        assert math.isfinite(metrics[primary]) and math.isfinite(metrics["baseline"][primary])
        version = client.get_model_version_by_alias(f"ganops-{task}", "champion")
        assert version.tags["contract.task"] == task and version.tags["primary_metric"] == primary
    assert str(client.get_model_version_by_alias("ganops-generator", "champion").version) == "1"  # untouched
    assert sh(["git", "status", "--porcelain"], root, env) == ""  # the workspace is as it was


def test_the_pipeline_benchmark_finds_no_op_reruns_in_this_workspace(project):
    """benchmarks/pipeline.py --workspace at its smallest setting: DVC and then Prefect rerun nothing
    but validate here (the script fails otherwise), and the workspace is left as it was."""
    root, env = project
    out = sh(
        [sys.executable, str(REPO / "benchmarks/pipeline.py"), "--repeats", "1", "--workspace", str(root)],
        root,
        env,
    )
    names = [line.split("|")[1].strip() for line in out.splitlines() if line.startswith("| ")][1:]
    assert names == [
        "no-op dvc repro",
        "cached Prefect rerun (fresh process)",
        "no-op dvc repro of a one-stage repo (DVC's floor)",
        "ganops --help",
    ]
    assert sh(["git", "status", "--porcelain"], root, env) == ""


def test_a_teammate_pulls_the_results_from_a_dvc_remote_and_has_nothing_to_rerun(project, tmp_path):
    """Engineer A pushes to a DVC remote; engineer B clones, pulls, and serves without training."""
    root, env = project
    remote = tmp_path / "remote"
    sh(["dvc", "remote", "add", "-d", "shared", str(remote)], root, env)
    sh(["dvc", "push", "-q"], root, env)
    sh(["git", "commit", "-qam", "a DVC remote for the team"], root, env)

    clone = tmp_path / "teammate"
    sh(["git", "clone", "-q", str(root), str(clone)], tmp_path, env)
    env = {**env, "PYTHONPATH": str(clone / "src")}
    began = time.perf_counter()
    sh(["dvc", "pull", "-q"], clone, env)
    print(f"dvc pull of the tiny pipeline's outputs: {time.perf_counter() - began:.1f} s")
    assert ran(sh(["dvc", "repro"], clone, env)) == ["validate"]
    assert sh(["git", "status", "--porcelain"], clone, env) == ""

    with serve_process(str(clone / "models/generator.onnx"), cwd=clone) as base:
        response = httpx.post(f"{base}/v1/generate", json={"n": 4, "seed": 1}, timeout=30)
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")


def test_a_clean_clone_reproduces_the_committed_lock_byte_for_byte(project, tmp_path):
    root, env = project
    clone = tmp_path / "clone"
    sh(["git", "clone", "-q", str(root), str(clone)], tmp_path, env)
    env = {**env, "PYTHONPATH": str(clone / "src")}
    # Without the DVC cache every stage with cached outputs reruns (evaluate's only output, the
    # committed metrics.json, is already right once its inputs come back identical).
    assert {"prepare", "evaluator", "train", "export", "register"} <= set(
        ran(sh(["dvc", "repro"], clone, env))
    )
    assert sh(["git", "status", "--porcelain"], clone, env) == ""  # same dvc.lock, same reports


def test_a_one_line_code_change_retrains_from_step_zero(project):
    root, env = project
    loop = root / "src" / "ganops" / "training" / "loop.py"
    loop.write_text(loop.read_text() + "\n# a one-line change\n")
    output = sh(["dvc", "repro"], root, env)
    assert "starts at step 0" in output and "resuming" not in output
    # The same seed retrains the same weights, so only what records the new run rereads them.
    assert ran(output) == ["validate", "train", "register"]
    sh(["git", "commit", "-qam", "code change"], root, env)


def test_changed_raw_data_reruns_prepare(project):
    root, env = project
    images = root / "raw" / "train-images-idx3-ubyte.gz"
    original = images.read_bytes()
    data = gzip.decompress(original)
    header, pixels = data[:16], bytearray(data[16:])
    pixels[:784] = bytes(255 - b for b in pixels[:784])  # one image inverted
    images.write_bytes(gzip.compress(header + bytes(pixels)))
    try:
        assert ran(sh(["dvc", "repro", "prepare"], root, env)) == ["validate", "prepare"]
    finally:
        images.write_bytes(original)
    # Back to the original bytes: DVC's run cache has prepare's outputs for exactly these inputs.
    output = sh(["dvc", "repro", "prepare"], root, env)
    assert ran(output) == ["validate"] and "Stage 'prepare' is cached" in output


def outputs(root: Path) -> dict[str, bytes]:
    tracked = ("data/prepared", "models", "reports")
    return {
        str(p.relative_to(root)): p.read_bytes()
        for d in tracked
        for p in (root / d).rglob("*")
        if p.is_file()
    }


def test_a_bad_param_value_deletes_nothing_and_says_how_to_undo(project):
    root, env = project
    sh(["dvc", "repro"], root, env)
    before = outputs(root)
    result = subprocess.run(
        ["dvc", "exp", "run", "-S", "train.epochs=two"], cwd=root, env=env, capture_output=True, text=True
    )
    assert result.returncode != 0
    message = result.stdout + result.stderr
    assert "train.epochs: input should be a valid integer" in message
    assert "git checkout params.yaml" in message and ran(message) == ["validate"]
    assert outputs(root) == before  # every earlier output byte for byte
    sh(["git", "checkout", "params.yaml"], root, env)
    assert ran(sh(["dvc", "repro"], root, env)) == ["validate"]


def test_changing_epochs_reruns_train_and_after_only(project):
    root, env = project
    sh(["dvc", "repro"], root, env)
    before = json.loads((root / "reports/registry.json").read_text())["version"]
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["epochs"] = 3
    write_params(root / "params.yaml", params)

    output = sh(["dvc", "repro"], root, env)
    assert ran(output) == ["validate", "train", "evaluate", "export", "register"]
    assert "resuming from step 32" in output  # the 2-epoch run's final checkpoint is continued
    registry = json.loads((root / "reports/registry.json").read_text())
    assert int(registry["version"]) == int(before) + 1
    assert registry["promoted"] == ("champion" in registry["aliases"])

    diff = json.loads(sh(["dvc", "metrics", "diff", "--json"], root, env))
    assert "fid_domain" in diff["reports/metrics.json"]  # compared with the baseline commit


def test_exp_run_accepts_a_param_from_every_section(project):
    root, env = project
    overrides = [
        "seed=11",
        "data.max_train=448",
        "evaluator.min_skill=0.3",
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


def test_exp_run_trains_data_parallel_inside_dvc_and_a_killed_worker_resumes(project):
    """`dvc exp run -S train.processes=2`: the train stage launches 2 workers inside DVC. One killed
    mid-run fails the stage with its rank; the next run resumes from the last checkpoint and
    registers a version, and a `dvc repro` afterwards reruns nothing."""
    import psutil

    root, env = project
    before = int(json.loads((root / "reports/registry.json").read_text())["version"])
    long_run = ["-S", "train.processes=2", "-S", "train.epochs=200", "-S", "train.max_steps=2000"]
    stage = subprocess.Popen(
        ["dvc", "exp", "run", *long_run], cwd=root, env=env, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 300
    started = time.time()
    while not [p for p in (root / "models/checkpoints").glob("*/step_*.pt") if p.stat().st_mtime > started]:
        assert stage.poll() is None, stage.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no checkpoint was written"
        time.sleep(0.02)
    workers = psutil.Process(stage.pid).children(recursive=True)
    next(p for p in workers if p.environ().get("RANK") == "1").kill()
    _, stderr = stage.communicate(timeout=300)
    assert stage.returncode != 0 and "error: train: worker rank 1 of 2 failed: killed by SIGKILL" in stderr
    sh(["dvc", "checkout", "train"], root, env)  # as the message says: DVC kept the last outputs
    assert (root / "models/generator.pt").is_file()

    run = max((root / "models/checkpoints").iterdir(), key=lambda p: p.stat().st_mtime)
    kept = max(int(p.stem.split("_")[1]) for p in run.glob("step_*.pt"))
    output = sh(["dvc", "exp", "run", "-S", f"train.max_steps={kept + 5}"], root, env)
    assert ran(output) == ["validate", "train", "evaluate", "export", "register"]
    assert f"resuming from step {kept} of {kept + 5}" in output
    assert "distributed: 2 processes (gloo)" in output
    assert json.loads((root / "logs/train.json").read_text())["processes"] == 2
    assert int(json.loads((root / "reports/registry.json").read_text())["version"]) == before + 1
    assert ran(sh(["dvc", "repro"], root, env)) == ["validate"]
