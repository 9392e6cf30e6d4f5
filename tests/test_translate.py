"""task translate: paired folders, side-by-side files or edges in, a U-Net through every stage out."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from ganops.cli import app as cli
from ganops.data.pairs import paired_files
from ganops.data.prepared import load_image_list, load_split
from ganops.errors import DataError
from ganops.files import read_json
from ganops.runtime import Stream, stream
from ganops.serve.app import ServeSettings, create_app
from ganops.serve.session import GeneratorSession
from ganops.serve.source import resolve
from ganops.stages import Layout, run_stage
from ganops.tasks import degrade
from serve_helpers import uvicorn_thread

from conftest import sketch_and_picture, tiny_params, write_paired_folder, write_params, write_side_by_side


@pytest.fixture(scope="module")
def paired(tmp_path_factory):
    """data.root with A/ (sketches) and B/ (pictures) of the same names, and the same pairs side by side."""
    root = tmp_path_factory.mktemp("pairs")
    return write_paired_folder(root / "folders", 120), write_side_by_side(
        root / "folders", root / "side_by_side"
    )


def _project(root, data_root, **data):
    root.mkdir()
    data = {"source": "imagefolder", "root": str(data_root), "image_size": 16, **data}
    overrides = {"task": "translate", "data": data, "train.max_steps": 6, "evaluator.epochs": 1}
    write_params(root / "params.yaml", tiny_params(data_root, **overrides))
    return root


def _run(root, *stages, monkeypatch):
    monkeypatch.chdir(root)
    for name in stages:
        run_stage(name, "params.yaml")


def test_unpaired_and_missing_names_are_refused_with_the_names(tmp_path):
    for side, names in (("A", ("x", "y", "only_a")), ("B", ("x", "y", "only_b1", "only_b2"))):
        (tmp_path / side).mkdir()
        for name in names:
            Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / side / f"{name}.png")
    with pytest.raises(DataError) as err:
        paired_files(tmp_path, "folders")
    assert "1 in A/ without a B/ image of the same name: only_a" in str(err.value)
    assert "2 in B/ without an A/ image of the same name: only_b1, only_b2" in str(err.value)
    (tmp_path / "B" / "only_b1.png").rename(tmp_path / "B" / "only_a.png")
    (tmp_path / "B" / "only_b2.png").unlink()
    assert [a.stem for a, _ in paired_files(tmp_path, "folders")] == ["only_a", "x", "y"]
    with pytest.raises(DataError, match="has no A/ or B/ folder; put the inputs in"):
        paired_files(tmp_path / "A", "folders")


def test_validate_refuses_an_unpaired_folder_before_prepare_runs(paired, tmp_path, monkeypatch):
    folders, _ = paired
    broken = tmp_path / "broken"
    for side in ("A", "B"):
        (broken / side).mkdir(parents=True)
        for path in sorted((folders / side).iterdir())[:5]:
            (broken / side / path.name).write_bytes(path.read_bytes())
    (broken / "B" / "000.png").unlink()
    root = _project(tmp_path / "project", broken, pairs="folders")
    with pytest.raises(DataError, match="1 in A/ without a B/ image of the same name: 000"):
        _run(root, "validate", monkeypatch=monkeypatch)
    assert not (root / "data" / "prepared").exists()


def test_folders_side_by_side_and_auto_prepare_the_same_pairs_and_direction_swaps_them(
    paired, tmp_path, monkeypatch
):
    folders, side_by_side = paired
    prepared = {}
    for name, data_root, data in (
        ("auto", folders, {}),  # a root with A/ and B/ pairs by itself for translate
        ("folders", folders, {"pairs": "folders"}),
        ("side_by_side", side_by_side, {"pairs": "side_by_side"}),
        ("reversed", folders, {"pairs": "folders", "direction": "BtoA"}),
    ):
        root = _project(tmp_path / name, data_root, **data)
        _run(root, "prepare", monkeypatch=monkeypatch)
        prepared[name] = load_split(root / "data" / "prepared", "train")
    auto, by_folders, by_halves, reversed_ = prepared.values()
    assert auto.inputs is not None and auto.images.shape == (108, 3, 16, 16)
    assert np.array_equal(auto.images, by_folders.images) and np.array_equal(auto.inputs, by_folders.inputs)
    # The same pairs, once as files and once as the halves of one file each.
    assert np.array_equal(by_halves.inputs, by_folders.inputs)
    assert np.array_equal(by_halves.images, by_folders.images)
    assert np.array_equal(reversed_.images, by_folders.inputs) and np.array_equal(
        reversed_.inputs, by_folders.images
    )
    # The sketch (A) is white around dark lines; the picture (B) is not.
    assert by_folders.inputs.mean() > 200 > by_folders.images.mean()


def test_edges_are_dark_lines_on_white_drawn_from_their_stream():
    images = torch.full((3, 3, 16, 16), -0.8)
    images[:2, :, 4:12, 5:11] = 0.9  # a bright box
    images[1] *= -1
    lines = degrade.edges(images, stream(1, Stream.DEGRADE, 0), blur=1.0, share=(0.1, 0.2))
    assert lines.shape == images.shape and set(lines.unique().tolist()) <= {-1.0, 1.0}
    assert torch.equal(lines, degrade.edges(images, stream(1, Stream.DEGRADE, 0), blur=1.0, share=(0.1, 0.2)))
    dark = (lines[:, 0] < 0).float().mean(dim=(1, 2))
    assert 0.05 < dark[0] <= 0.25 and dark[2] == 0  # a flat image has no edge
    assert (lines[0, 0, 7:9, 7:9] == 1).all()  # the box's inside is no edge; its border is
    assert (lines[0, 0, 4:12, 4:6] < 0).any()


def test_translate_trains_scores_exports_and_serves_beside_the_identity(paired, tmp_path, monkeypatch):
    folders, _ = paired
    root = _project(tmp_path / "run", folders)
    _run(
        root,
        "validate",
        "prepare",
        "evaluator",
        "evalset",
        "train",
        "evaluate",
        "export",
        monkeypatch=monkeypatch,
    )
    layout = Layout(root)
    metrics = read_json(layout.metrics)
    assert metrics["task"] == "translate" and metrics["baseline"]["method"] == "identity"
    assert {"fid_domain", "psnr_y", "ssim_y"} <= metrics.keys() & metrics["baseline"].keys()
    evalset = np.stack(load_image_list(layout.evalset / "inputs.npz"))
    test = load_split(layout.prepared, "test")
    assert np.array_equal(evalset, test.inputs[: len(evalset)] / np.float32(127.5) - 1)  # the pairs' inputs
    # The identity scores what the inputs are against the pictures: the sketches' PSNR.
    assert metrics["baseline"]["psnr_y"] < 15

    sidecar = read_json(layout.onnx_sidecar)
    assert sidecar["input"]["name"] == "image_a" and sidecar["task"] == "translate"
    session = GeneratorSession(resolve(str(layout.onnx)), "cpu", threads=1)
    sketch, _ = sketch_and_picture(np.random.default_rng(5), size=28)
    upload = io.BytesIO()
    Image.fromarray(sketch).save(upload, format="PNG")
    with uvicorn_thread(create_app(session, ServeSettings())) as base:
        ready = httpx.get(f"{base}/readyz").json()
        assert ready["route"] == "/v1/translate" and ready["fields"] == ["image"]
        answer = httpx.post(f"{base}/v1/translate", files={"image": ("s.png", upload.getvalue())}, timeout=30)
        assert answer.status_code == 200, answer.text
        out = np.asarray(Image.open(io.BytesIO(answer.content)))
        assert out.shape == (28, 28, 3)
    image = tmp_path / "sketch.png"
    image.write_bytes(upload.getvalue())
    result = CliRunner().invoke(
        cli, ["restore", str(layout.onnx), str(image), "-o", str(tmp_path / "made.png")]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "made.png").read_bytes() == answer.content  # the CLI and the server: the same bytes


def test_the_source_record_says_how_the_folder_pairs_so_a_new_task_reruns_prepare(
    paired, tmp_path, monkeypatch
):
    """prepare's params are data's, not the task's; ``auto`` pairs a folder only for a task that learns
    from pairs, so validate writes the pairing into the source record that prepare depends on."""
    folders, _ = paired
    records = {}
    for task in ("translate", "colorize"):
        root = _project(tmp_path / task, folders)
        params = (root / "params.yaml").read_text().replace("task: translate", f"task: {task}")
        (root / "params.yaml").write_text(params)
        _run(root, "validate", monkeypatch=monkeypatch)
        records[task] = read_json(Layout(root).source)
    assert records["translate"].pop("pairs") == "folders"
    assert "pairs" not in records["colorize"] and records["translate"] == records["colorize"]
