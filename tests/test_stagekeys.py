"""Prefect's cache key for a stage (ganops.stagekeys): the stage's command, the bytes of the deps
and the values of the params keys dvc.yaml lists for it, and nothing else. No flow runs here."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from ganops.stagekeys import read_stages, stage_key
from ganops.stages import DVC_FILES

from conftest import copy_from_repo, tiny_params, write_params

# Files the stages below read or not, by what dvc.yaml lists (checked in each test).
FILES = {
    "models/generator.pt": b"generator weights",
    "models/generator.onnx": b"onnx graph",
    "data/prepared/train.npz": b"training images",
    "data/prepared/manifest.json": b"{}",
    "reports/notes.txt": b"nobody reads this",
}


@pytest.fixture()
def project(tmp_path) -> Path:
    copy_from_repo(tmp_path, *DVC_FILES)
    for name, content in FILES.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(content)
    write_params(tmp_path / "params.yaml", tiny_params(tmp_path / "idx"))
    return tmp_path


def key(root: Path, stage: str) -> str:
    return stage_key(root, read_stages(root)[stage], root / "params.yaml")


def set_param(root: Path, dotted: str, value) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    node = params
    *parents, last = dotted.split(".")
    for part in parents:
        node = node[part]
    assert node.get(last) != value, "the test must change the value"
    node[last] = value
    write_params(root / "params.yaml", params)


def lists_dep(root: Path, stage: str, path: str) -> bool:
    """Whether dvc.yaml lists ``path`` for ``stage``, itself or a folder above it."""
    return any(path == dep or path.startswith(dep + "/") for dep in read_stages(root)[stage].deps)


def lists_param(root: Path, stage: str, dotted: str) -> bool:
    """Whether dvc.yaml lists ``dotted`` for ``stage``, itself or a section above it."""
    return any(dotted == p or dotted.startswith(p + ".") for p in read_stages(root)[stage].params)


def test_the_same_inputs_give_the_same_key_however_often_asked(project):
    keys = {stage: key(project, stage) for stage in read_stages(project)}
    assert {stage: key(project, stage) for stage in read_stages(project)} == keys
    assert len(set(keys.values())) == len(keys)  # and each stage has its own
    (project / "models" / "generator.pt").write_bytes(FILES["models/generator.pt"])  # rewritten, same bytes
    assert key(project, "evaluate") == keys["evaluate"]


@pytest.mark.parametrize(
    ("stage", "path"),
    [
        ("evaluate", "models/generator.pt"),  # a listed file
        ("evaluate", "data/prepared/train.npz"),  # a file in a listed folder
        ("register", "data/prepared/manifest.json"),
        ("export", "models/generator.pt"),
    ],
)
def test_a_listed_dep_changing_its_bytes_changes_the_key(project, stage, path):
    assert lists_dep(project, stage, path)
    before = key(project, stage)
    (project / path).write_bytes(FILES[path] + b"!")
    changed = key(project, stage)
    assert changed != before
    (project / path).unlink()
    assert key(project, stage) not in (before, changed)  # a dep gone is another key again
    (project / path).write_bytes(FILES[path])
    assert key(project, stage) == before  # the same bytes back: the same key, a cache hit


@pytest.mark.parametrize(
    ("stage", "dotted", "value"),
    [
        ("train", "train.lr", 1e-3),  # in a listed section
        ("train", "model.g_width", 16),
        ("train", "seed", 8),
        ("evaluate", "train.device", "cuda"),  # a listed key of a section the stage does not list whole
        ("evaluate", "evaluate.num_samples", 128),
        ("prepare", "data.image_size", 28),
        ("export", "register.model_name", "other-name"),
    ],
)
def test_a_listed_param_changing_changes_the_key(project, stage, dotted, value):
    assert lists_param(project, stage, dotted)
    before = key(project, stage)
    set_param(project, dotted, value)
    assert key(project, stage) != before


@pytest.mark.parametrize(
    ("stage", "change"),
    [
        ("evaluate", "param train.lr"),  # train is listed for evaluate by train.device alone
        ("evaluate", "param register.experiment"),
        ("export", "param train.epochs"),
        ("prepare", "param seed"),
        ("evaluate", "file models/generator.onnx"),
        ("train", "file models/generator.pt"),  # train's output, not its dep
        ("register", "file data/prepared/train.npz"),  # register lists one file of the folder
        ("evaluate", "file reports/notes.txt"),
    ],
)
def test_an_unlisted_file_or_param_leaves_the_key_alone(project, stage, change):
    kind, name = change.split()
    before = key(project, stage)
    if kind == "param":
        assert not lists_param(project, stage, name)
        values = {"train.lr": 1e-3, "register.experiment": "other", "train.epochs": 9, "seed": 8}
        set_param(project, name, values[name])
    else:
        assert not lists_dep(project, stage, name)
        (project / name).write_bytes(FILES[name] + b"!")
    assert key(project, stage) == before
