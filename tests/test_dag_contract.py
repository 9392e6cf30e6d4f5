"""The DAG's contract, checked on the repository itself: dvc.yaml lists the code each stage runs
and the paths and params of the stage table, and the committed dvc.lock is the one this code and
params.yaml produce."""

from __future__ import annotations

from pathlib import Path

import pytest

from ganops import codedeps
from ganops.stages import BY_NAME, DVC_FILES

from conftest import copy_from_repo

REPO = Path(__file__).resolve().parents[1]


def test_dvc_yaml_lists_exactly_the_code_each_stage_imports():
    problems = codedeps.drift(REPO)
    assert problems == {}, f"{problems}; run `python -m ganops.codedeps --write`"


def test_dvc_yaml_lists_exactly_the_stage_tables_paths_and_params():
    assert codedeps.table_drift(REPO) == []


@pytest.mark.parametrize(
    ("file", "old", "new", "complaint"),
    [
        ("dvc.yaml", "      - models/generator.onnx\n", "      - models/generator_v2.onnx\n", "export outs"),
        (
            "dvc.yaml",
            "      - models/evaluator.pt        #",
            "      - models/evaluator_old.pt    #",
            "train deps",
        ),
        ("dvc.yaml", "      - export\n", "      - export.opset\n", "export params"),
        (BY_NAME["validate"].dvcfile, "    wdir: ../..\n", "", "validate wdir"),
        (BY_NAME["validate"].dvcfile, "  validate:\n", "  check:\n", "stages"),
    ],
)
def test_a_drifted_path_or_params_key_fails_the_check(tmp_path, file, old, new, complaint):
    copy_from_repo(tmp_path, *DVC_FILES)
    text = (tmp_path / file).read_text()
    assert old in text
    (tmp_path / file).write_text(text.replace(old, new, 1))
    problems = codedeps.table_drift(tmp_path)
    assert any(line.startswith(complaint) for line in problems), problems


def test_the_import_closure_follows_lazy_imports_and_parent_packages():
    files = {str(p.relative_to(codedeps.PACKAGE_DIR)) for p in codedeps.stage_closure("export")}
    assert "models/io.py" in files  # imported by stages/export.py
    assert "models/__init__.py" in files and "stages/__init__.py" in files  # parents run on import
    assert "training/loop.py" not in files  # export only reads the generator file
    assert "cli.py" not in files  # dispatch only
    register = {str(p.relative_to(codedeps.PACKAGE_DIR)) for p in codedeps.stage_closure("register")}
    assert "registry/tracking.py" in register  # imported inside a function


def test_the_code_hash_changes_with_any_line(tmp_path):
    package = tmp_path / "ganops"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "a.py").write_text("def f():\n    from ganops import b\n")
    (package / "b.py").write_text("X = 1\n")
    files = codedeps.closure("ganops.sub.a", package)
    assert {p.name for p in files} == {"__init__.py", "a.py", "b.py"}
    before = codedeps.code_hash(files, package)
    (package / "b.py").write_text("X = 1\n# one more line\n")
    assert codedeps.code_hash(files, package) != before


def test_the_committed_dvc_lock_matches_the_code_and_params():
    """A change to a stage's code or params must come with the dvc.lock of a `make run` on it."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    from dvc.repo import Repo

    with Repo(str(REPO)) as repo:
        status = repo.status()
    stale = {}
    for stage, entries in status.items():
        for entry in entries:
            if not isinstance(entry, dict):
                continue  # 'always changed' (validate)
            # code deps, and params (DVC reports them as a changed dep named after the params file)
            changed = entry.get("changed deps", {})
            stale_here = {
                p: s for p, s in changed.items() if p.startswith("src/") or p.endswith("params.yaml")
            }
            if stale_here:
                stale[stage] = stale_here
    assert stale == {}, (
        f"dvc.lock was made with other code or params: {stale}. Run `make run` and commit dvc.lock "
        "and the reports it wrote"
    )
