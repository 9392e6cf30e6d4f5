"""The published benchmarks run their smallest setting: the numbers in docs/ come from code that works."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ganops.config import parse_params
from ganops.stages import Layout
from ganops.stages.evaluator import run as train_evaluator
from ganops.stages.prepare import run as prepare

from conftest import tiny_params, write_params

REPO = Path(__file__).resolve().parents[1]


def test_the_quality_curve_resumes_each_point_and_draws_its_plot(tiny_idx, tmp_path):
    raw = tiny_params(tiny_idx)
    params = parse_params(raw)
    prepare(params, Layout(tmp_path))
    train_evaluator(params, Layout(tmp_path))
    out = tmp_path / "out"
    command = [
        sys.executable, str(REPO / "benchmarks" / "quality_curve.py"),
        "--params", str(write_params(tmp_path / "params.yaml", raw)),
        "--project", str(tmp_path), "--only", "dcgan-ns", "dcgan-wgan-gp", "--epochs", "2", "1",
        "--jsonl", str(out / "curve.jsonl"), "--csv-dir", str(out / "curve"), "--png", str(out / "curve.png"),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]

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
