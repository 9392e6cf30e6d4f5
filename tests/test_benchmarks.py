"""Every script in benchmarks/ runs its smallest setting: the numbers in docs/ come from code that works.

Each test runs the script as a user does (a separate process) on the tests' tiny data and settings
and checks the table it prints; ``test_every_benchmark_has_a_smoke_run`` keeps the list complete.
"""

import csv
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ganops.config import parse_params
from ganops.export.fp16 import MAX_GREY_DIFF, MEAN_GREY_DIFF
from ganops.files import write_json
from ganops.models import ArchSpec, build_generator
from ganops.models.io import save_generator
from ganops.stages import BY_NAME, Layout
from ganops.stages.evaluator import run as train_evaluator
from ganops.stages.export import run as export
from ganops.stages.prepare import run as prepare
from serve_helpers import export_tiny_restoration

from conftest import tiny_params, write_params

REPO = Path(__file__).resolve().parents[1]
SMOKED = {  # script -> the test that runs it
    "cpu_kernels.py": "test_cpu_kernels_times_each_stage_pinned_and_native",
    "data_parallel.py": "test_data_parallel_times_one_process_against_two",
    "ema_decay.py": "test_ema_decay_scores_each_shadow",
    "evaluator_validation.py": "test_evaluator_validation_prints_both_tables",
    "fp16_parity.py": "test_fp16_parity_measures_a_trained_generator",
    "inference.py": "test_inference_times_torch_and_onnx_runtime",
    "native_size.py": "test_native_size_scores_both_sizes_with_one_evaluator",
    # with --workspace, in the DVC pipeline's module (it needs a workspace that has run the DAG);
    # its default throw-away project is checked here
    "pipeline.py": "test_pipeline_dvc.py::test_the_pipeline_benchmark_finds_no_op_reruns_in_this_workspace",
    "quality.py": "test_quality_scores_a_configuration",
    "quality_curve.py": "test_the_quality_curve_resumes_each_point_and_draws_its_plot",
    "rawdata.py": "test_rawdata_fingerprint_cold_and_warm",
    # in the DVC pipeline's module: it needs a workspace that has run the DAG, which that module builds
    "restoration.py": "test_pipeline_dvc.py::test_restoration_tasks_reuse_prepare_and_the_evaluator_and_register_their_own_models",
    "register.py": "test_register_times_a_registration_and_its_retries",
    "serve.py": "test_serve_compares_ganops_serve_with_mlflow_models_serve",
    "serve_load.py": "test_serve_load_with_and_without_micro_batching",
    "serve_restoration.py": "test_serve_restoration_times_in_process_and_served",
    "train_throughput.py": "test_train_throughput_runs_baseline_and_candidate",
}


def bench(script: str, *args, cwd: Path = REPO, env: dict | None = None, timeout: int = 600) -> str:
    """Run benchmarks/<script> as a user does; its stdout (it must exit 0)."""
    command = [sys.executable, str(REPO / "benchmarks" / script), *map(str, args)]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{script}: {done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def table_rows(out: str) -> list[list[str]]:
    """The cells of the markdown table rows a script printed (header and rule left out)."""
    rows = [
        [c.strip() for c in line.strip("|").split("|")] for line in out.splitlines() if line.startswith("|")
    ]
    return [r for r in rows[1:] if not set("".join(r)) <= set("-")]


def test_every_benchmark_has_a_smoke_run():
    assert sorted(SMOKED) == sorted(p.name for p in (REPO / "benchmarks").glob("*.py"))
    for test in SMOKED.values():
        module, _, name = test.rpartition("::")
        assert name in (
            globals() if not module else vars(importlib.import_module(module.removesuffix(".py")))
        )


@pytest.fixture(scope="module")
def project(tiny_idx, tmp_path_factory):
    """data/prepared and models/evaluator.pt from the tiny params: what the training benchmarks need."""
    root = tmp_path_factory.mktemp("bench-project")
    raw = tiny_params(tiny_idx)
    params = parse_params(raw)
    prepare(params, Layout(root))
    train_evaluator(params, Layout(root))
    return root, write_params(root / "params.yaml", raw)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Layout:
    """A tiny generator.pt exported to ONNX, with the files register reads beside it."""
    spec = ArchSpec(arch="dcgan", latent_dim=8, image_size=16, channels=1, g_width=4, d_width=4)
    layout = Layout(tmp_path_factory.mktemp("bench-exported"))
    save_generator(layout.generator, build_generator(spec).eval(), spec, step=1, note="test")
    export(parse_params({}), layout)
    write_json(layout.prepared / "manifest.json", {"splits": {"train": {"images_sha256": "a" * 64}}})
    write_json(layout.metrics, {"fid_domain": 20.0, "kid_domain": 0.01, "evaluator_sha256": "a" * 64})
    return layout


def test_the_quality_curve_resumes_each_point_and_draws_its_plot(project, tmp_path):
    root, params = project
    out = tmp_path / "out"
    bench(
        "quality_curve.py", "--params", params,
        "--project", root, "--only", "dcgan-ns", "dcgan-wgan-gp", "--epochs", "2", "1",
        "--jsonl", out / "curve.jsonl", "--csv-dir", out / "curve", "--png", out / "curve.png",
    )  # fmt: skip

    rows = [json.loads(line) for line in (out / "curve.jsonl").read_text().splitlines()]
    assert [(r["config"], r["epochs"]) for r in rows] == [
        ("dcgan-ns", 1), ("dcgan-ns", 2), ("dcgan-wgan-gp", 1), ("dcgan-wgan-gp", 2)
    ]  # fmt: skip
    for first, second in (rows[:2], rows[2:]):
        assert second["steps"] == 2 * first["steps"] > 0 and second["resumed_from"] == first["steps"]
        assert second["train_seconds"] > first["train_seconds"] > 0  # cumulative: the second resumed
        for row in (first, second):
            assert row["fid_low"] <= row["fid_domain"] <= row["fid_high"]
            assert 0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1 and row["kid_domain"] is not None
    for config, mine in (("dcgan-ns", rows[:2]), ("dcgan-wgan-gp", rows[2:])):
        with open(out / "curve" / f"{config}.csv") as f:
            table = list(csv.DictReader(f))
        assert [int(r["epochs"]) for r in table] == [1, 2]
        assert [float(r["fid_domain"]) for r in table] == pytest.approx(
            [r["fid_domain"] for r in mine], rel=1e-5
        )
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_published_curve_is_what_dvc_plots_draws():
    import yaml

    plots = {
        name: spec
        for entry in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
        for name, spec in entry.items()
    }
    files = plots["quality_curve"]["y"]
    assert files and all((REPO / f).is_file() for f in files)
    newest = {}  # (config, epochs) -> the last line measured for it: a rerun replaces a point
    for line in (REPO / "docs" / "quality_curve.jsonl").read_text().splitlines():
        point = json.loads(line)
        newest[point["config"], point["epochs"]] = point
    for file in files:
        with open(REPO / file) as f:
            table = list(csv.DictReader(f))
        config = Path(file).stem
        assert [int(r["epochs"]) for r in table] == sorted(e for c, e in newest if c == config)
        for row in table:
            assert float(row["fid_domain"]) == pytest.approx(
                newest[config, int(row["epochs"])]["fid_domain"], rel=1e-5
            )


def test_data_parallel_times_one_process_against_two(project, tmp_path):
    root, params = project
    out = bench(
        "data_parallel.py", "--project", root, "--params", params, "--images", 640, "--eval-every", 5,
        "--json", tmp_path / "runs.json",
    )  # fmt: skip
    rows = table_rows(out)
    assert [row[0] for row in rows] == [
        "1 process x 1 thread", "1 process x 2 threads (default)", "2 processes x 1 thread"
    ]  # fmt: skip
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert [(r["processes"], r["threads"]) for r in runs] == [(1, 1), (1, 2), (2, 1)]
    assert all(r["steps"] == 20 and [step for step, _ in r["live"]] == [5, 10, 15, 20] for r in runs)
    target = max(r["live"][-1][1] for r in runs)  # the worst final live FID: every setting reaches it
    for run, row in zip(runs, rows, strict=True):
        assert run["target"] == target
        # the train seconds at the first live FID at or below the target, at the run's mean rate
        first = next(step for step, fid in run["live"] if fid <= target)
        seconds = run["seconds_to_target"]
        assert isinstance(seconds, float) and 0 < seconds <= run["train_seconds"]
        assert seconds == pytest.approx(first / run["steps"] * run["train_seconds"])
        assert row[4] == f"{seconds:.0f}"
    base = runs[0]
    # the ratios of the other settings against the first
    for run, row in zip(runs[1:], rows[1:], strict=True):
        assert row[2] == f"{run['images_per_second'] / base['images_per_second']:.2f}x"
        assert row[5] == f"{run['seconds_to_target'] / base['seconds_to_target']:.2f}"


def test_ema_decay_scores_each_shadow(project):
    root, params = project
    out = bench(
        "ema_decay.py",
        "--params",
        params,
        "--project",
        root,
        "--seeds",
        0,
        "--decays",
        0.9,
        0.99,
        "--max-steps",
        3,
    )
    assert [row[0] for row in table_rows(out)] == ["0.9", "0.99"]
    assert re.search(r"seed 0 ema_decay 0.99: fid_domain \d", out)


def test_quality_scores_a_configuration(project, tmp_path):
    root, params = project
    jsonl = tmp_path / "quality.jsonl"
    out = bench(
        "quality.py", "--params", params, "--project", root, "--seeds", 1, "--max-steps", 3, "--only", "dcgan-ns",
        "--jsonl", jsonl,
    )  # fmt: skip
    [row] = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert row["config"] == "dcgan-ns" and row["fid_domain"] > 0 and row["ratio"] > 0
    assert table_rows(out)[0][:2] == ["dcgan-ns", "1"]


def test_evaluator_validation_prints_both_tables(tiny_idx, tmp_path):
    params = write_params(tmp_path / "params.yaml", tiny_params(tiny_idx))
    out = bench(
        "evaluator_validation.py", "--params", params, "--data-root", tiny_idx, "--methods", "rotation",
        "--reference", 64, "--count", 64, "--steps", 1, 2, 3, "--samples", 64, "--threads", 1,
        "--json", tmp_path / "validation.json",
    )  # fmt: skip
    record = json.loads((tmp_path / "validation.json").read_text())
    assert set(record["a"]) == set(record["b"]) == {"supervised", "rotation", "untrained"}
    assert all(len(fids) == 3 for fids in record["b"].values())
    assert "Spearman vs supervised" in out and "monotone in noise" in out


def test_fp16_parity_measures_a_trained_generator(tiny_idx):
    out = bench(
        "fp16_parity.py", "--data-root", tiny_idx, "--steps", 2, "--only", "dcgan-32-1", "--factors", 1
    )
    [row] = [json.loads(line.split(" (trained")[0]) for line in out.splitlines() if line.startswith("{")]
    assert row["config"] == "dcgan-32-1" and row["steps"] == 2
    assert "error" not in row  # the fp16 graph was made and measured
    assert 0 <= row["mean_grey_diff"] <= row["max_grey_diff"] <= 255 and 0 <= row["max_abs_diff"] <= 2
    within = row["max_grey_diff"] <= MAX_GREY_DIFF and row["mean_grey_diff"] <= MEAN_GREY_DIFF
    # export wrote the variant exactly when its images are within the bounds, else said which one failed
    if within:
        assert row["export"] == "written"
    else:
        assert row["export"].startswith("skipped: its 8-bit images differ from fp32's: ")


def test_inference_times_torch_and_onnx_runtime(exported, tmp_path):
    params = write_params(tmp_path / "params.yaml", {"model": {"latent_dim": 8}})
    out = bench(
        "inference.py", exported.generator, "--params", params, "--threads", 1, "--iters", 5, "--rounds", 1
    )
    runtimes = {(row[0], row[1]) for row in table_rows(out)}
    for batch in ("1", "64", "1024"):
        assert {
            (batch, "torch eager, inference_mode (cpu)"),
            (batch, "ONNX Runtime, CPU provider"),
        } <= runtimes


def test_rawdata_fingerprint_cold_and_warm(tiny_idx):
    out = bench("rawdata.py", "--files", 20, "--kb", 1, "--fashion-mnist", tiny_idx)
    lines = out.splitlines()
    assert lines[1].startswith("fashion-mnist (4 files)") and lines[1].split()[-5] == "4"
    assert lines[2].startswith("image folder (20 files of 1 KB)") and lines[2].split()[-5] == "20"


def test_register_times_a_registration_and_its_retries():
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    out = bench("register.py", "--repeats", 1, env=env)
    assert "retry, version complete (found)" in out and "retry after outage (pending -> complete)" in out


def test_serve_load_with_and_without_micro_batching(exported):
    out = bench("serve_load.py", exported.onnx, "--requests", 16, "--clients", 2, "--rounds", 1)
    rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert {(r["n"], r["batching"]) for r in rows} == {(1, False), (1, True), (64, False), (64, True)}
    assert all(r["errors"] == 0 and r["rps"] > 0 for r in rows)
    assert "n=64: micro-batching throughput gain" in out


def test_serve_compares_ganops_serve_with_mlflow_models_serve(exported, tmp_path, monkeypatch):
    from ganops.stages.register import run as register

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    # serve.py sizes the baseline's latents from the run's model.latent_dim: the exported generator's.
    register(parse_params({"model": {"latent_dim": 8}, "register": {"experiment": "bench-serve"}}), exported)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # mlflow
    out = bench("serve.py", "--requests", 20, "--clients", 2, "--rounds", 1, env=env)
    servers = {row[0]: row for row in table_rows(out)}
    assert set(servers) == {
        "ganops serve (ONNX Runtime, micro-batching)",
        "mlflow models serve (PyTorch flavor)",
    }
    assert all(row[-1] == "0" for row in servers.values())  # no errors
    assert "requests/s ratio" in out


def test_train_throughput_runs_baseline_and_candidate(tiny_idx, tmp_path):
    params = write_params(tmp_path / "params.yaml", tiny_params(tiny_idx))
    out = bench(
        "train_throughput.py", "--params", params, "--batch-sizes", 16, "--steps", 2, "--warm", 1, "--rounds", 1,
        "--max-train", 64, "--device", "cpu",
    )  # fmt: skip
    loops = [row[1] for row in table_rows(out)]
    assert loops[0].startswith("baseline: eager loop") and "ganops train(): defaults for this device" in loops
    assert all(row[0] == "16" and float(row[2].replace(",", "")) > 0 for row in table_rows(out))


@pytest.mark.slow
def test_pipeline_benchmark_builds_a_valid_throw_away_project(tmp_path):
    """pipeline.py's default project (its timed runs are smoked with --workspace): valid params, data
    and DAG, every stage still to run."""
    spec = importlib.util.spec_from_file_location("pipeline_bench", REPO / "benchmarks" / "pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    env = module.project(tmp_path)
    module.run("validate", ["dvc", "repro", BY_NAME["validate"].target], tmp_path, env)  # exits on failure
    status = subprocess.run(
        ["dvc", "status", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert set(json.loads(status.stdout)) >= {
        "prepare",
        "evaluator",
        "train",
        "evaluate",
        "export",
        "register",
    }


def test_native_size_scores_both_sizes_with_one_evaluator(tiny_idx, tmp_path):
    params = write_params(tmp_path / "params.yaml", tiny_params(tiny_idx))
    out = bench(
        "native_size.py", "--params", params, "--root", tmp_path / "runs", "--jsonl", tmp_path / "rows.jsonl",
        "--seeds", "1", "--images", "64", "--probe-steps", "2", "--samples", "64",
    )  # fmt: skip
    rows = [json.loads(line) for line in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert [r["size"] for r in rows] == [32, 28]
    assert rows[1]["images"] == round(64 * rows[0]["speed_ratio"] / 32) * 32  # equal time: the ratio's budget
    assert all(r["fid_domain_at_32"] > 0 and r["train_seconds"] > 0 for r in rows)
    assert [r[0] for r in table_rows(out)] == ["32x32", "28x28"]


def test_cpu_kernels_times_each_stage_pinned_and_native(tiny_idx, tmp_path):
    params = write_params(tmp_path / "params.yaml", tiny_params(tiny_idx, **{"train.max_steps": 4}))
    out = bench("cpu_kernels.py", "--params", params, "--rounds", "1", "--as-given")
    rows = table_rows(out)
    assert [r[0] for r in rows[:3]] == ["evaluator", "train", "evaluate"]
    assert all(float(r[1]) > 0 and float(r[2]) > 0 and r[3].endswith("x") for r in rows[:3])

    # The two modes really ran differently, as every stage logged it: the pin's AVX2 kernels and MKL
    # branch in each stage, and something else natively (MKL's own branch, even on an AVX2-only CPU).
    in_effect = {r[0]: r[1] for r in rows if r[0] in ("avx2", "native")}
    assert in_effect["avx2"] == "AVX2, MKL COMPATIBLE, 2 threads"
    assert ";" not in in_effect["native"] and "MKL COMPATIBLE" not in in_effect["native"]


def test_serve_restoration_times_in_process_and_served(tmp_path):
    """Tiny x2, inpaint and translate models on a 32x32 picture: a row each, with rates and no errors."""
    from PIL import Image

    tasks = ("superres", "inpaint", "translate")
    models = {task: export_tiny_restoration(tmp_path / task, task).onnx for task in tasks}
    photo = tmp_path / "photo.png"
    y, x = np.mgrid[:40, :48]
    Image.fromarray(((x * 5 + y * 3) % 256).astype("uint8")).convert("RGB").save(photo)
    out = bench(
        "serve_restoration.py", *(a for task in tasks for a in (f"--{task}", models[task])),
        "--image", photo, "--size", 32, "--tile-size", 16, "--repeats", 2, "--requests", 4, "--threads", 1,
    )  # fmt: skip
    rows = {row[0]: row for row in table_rows(out)}
    assert set(rows) == set(tasks) and "superres x2" in rows["superres"][1]
    for row in rows.values():
        assert float(row[3]) > 0 and float(row[4]) > 0 and row[-1] == "0"
