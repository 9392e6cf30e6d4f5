"""The validate stage's remembered verdict: a params check that passed is skipped only while the
params file, ganops' code and the validating libraries are the same bytes; the records are always
measured afresh, and any error reaches the user as the full check words it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import ganops
from ganops.stages import Layout
from ganops.stages.validate import verdict_key

from conftest import tiny_params, write_params


def validate(root: Path) -> subprocess.CompletedProcess:
    """`ganops validate` in ``root``, through the command's entry point as DVC runs it."""
    return subprocess.run(
        [sys.executable, "-m", "ganops", "validate"], cwd=root, capture_output=True, text=True, timeout=120
    )


def remembered(root: Path) -> bool:
    """Whether the last validate in ``root`` skipped the params check (its timing log says so)."""
    return "params" in json.loads(Layout(root).timings("validate").read_text())


@pytest.fixture()
def project(tiny_colour_folder, tmp_path) -> Path:
    """A project on its own copy of a small image folder (the tests add and delete files in it)."""
    images = tmp_path / "images"
    shutil.copytree(tiny_colour_folder, images)
    root = tmp_path / "project"
    root.mkdir()
    write_params(
        root / "params.yaml", tiny_params(images, data={"source": "imagefolder", "root": str(images)})
    )
    return root


def test_a_passed_check_is_remembered_and_a_changed_file_is_checked_again(project):
    layout = Layout(project)
    first = validate(project)
    assert first.returncode == 0, first.stderr
    assert not remembered(project)
    records = layout.libraries.read_bytes(), layout.source.read_bytes()

    again = validate(project)
    assert again.returncode == 0, again.stderr
    assert remembered(project)
    assert (layout.libraries.read_bytes(), layout.source.read_bytes()) == records
    assert "params are valid; raw data: 320 files" in again.stderr

    params = project / "params.yaml"
    good = params.read_text()
    params.write_text(good.replace("epochs: 2", "epochs: -2", 1))  # as `dvc exp run -S` would
    bad = validate(project)
    assert bad.returncode != 0
    assert "train.epochs: must be >= 1" in bad.stderr and "git checkout params.yaml" in bad.stderr
    assert (layout.libraries.read_bytes(), layout.source.read_bytes()) == records  # nothing lost

    params.write_text(good)
    assert validate(project).returncode == 0 and remembered(project)  # the same bytes passed before


def test_the_remembered_path_still_fingerprints_the_raw_files(project):
    layout = Layout(project)
    assert validate(project).returncode == 0
    before = json.loads(layout.source.read_text())
    images = project.parent / "images"
    shutil.copy(next(images.rglob("*.png")), images / "warm" / "new.png")

    assert validate(project).returncode == 0 and remembered(project)
    after = json.loads(layout.source.read_text())
    assert after["files"] == before["files"] + 1 and after["sha256"] != before["sha256"]

    shutil.rmtree(images)  # the remembered path fails; the full check explains it
    gone = validate(project)
    assert gone.returncode != 0
    assert f"data.root: {images} does not exist" in gone.stderr
    assert layout.source.read_text() == json.dumps(after, indent=2) + "\n"  # the last record stays


def test_the_verdict_key_follows_every_byte_of_ganops_code(tmp_path, monkeypatch):
    params = write_params(tmp_path / "params.yaml", {"seed": 1})
    package = tmp_path / "ganops"
    shutil.copytree(Path(ganops.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(ganops, "__file__", str(package / "__init__.py"))
    key = verdict_key(params)
    assert verdict_key(params) == key

    config = package / "config.py"
    config.write_text(config.read_text() + "\n# a rule changed\n")
    assert verdict_key(params) != key
    changed = verdict_key(params)
    params.write_text("seed: 2\n")
    assert verdict_key(params) != changed


def test_the_remembered_path_loads_neither_the_cli_nor_pydantic(project):
    """What makes it fast: a no-op `dvc repro` pays for this process every time."""
    assert validate(project).returncode == 0
    code = (
        "import sys; from ganops.entry import main; sys.argv = ['ganops', 'validate']; main(); "
        "heavy = {'typer', 'pydantic', 'numpy', 'torch'} & set(sys.modules); assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], cwd=project, check=True, timeout=60)
    assert remembered(project)


def test_a_second_runner_of_a_stage_waits_for_the_first(project):
    """The workspace lock of a stage (ganops.locks): another process holding it makes validate wait, and say so."""
    import select

    from ganops.locks import stage_lock

    with stage_lock(Layout(project).lock("validate"), "validate"):
        second = subprocess.Popen(
            [sys.executable, "-m", "ganops", "validate"], cwd=project, stderr=subprocess.PIPE, text=True
        )
        said = ""
        while "waiting for another run of the validate stage" not in said:
            assert select.select([second.stderr], [], [], 60)[0], f"validate did not wait: {said}"
            line = second.stderr.readline()
            assert line, f"validate ended without waiting: {said}"
            said += line
        assert second.poll() is None  # it waits while the lock is held
    _, rest = second.communicate(timeout=120)
    assert second.returncode == 0, said + rest


def test_versions_read_from_dist_info_folders_are_what_the_package_metadata_says():
    from importlib import metadata

    from ganops.environment import NUMERIC_LIBRARIES, installed_version
    from ganops.stages.validate import VALIDATING_LIBRARIES

    names = [d for dists in NUMERIC_LIBRARIES.values() for d in dists] + list(VALIDATING_LIBRARIES)
    checked = 0
    for name in names:
        try:
            expected = metadata.version(name)
        except metadata.PackageNotFoundError:
            expected = None
        assert installed_version(name) == expected, name
        checked += expected is not None
    assert checked >= 10  # torch, numpy, pydantic, PyYAML, ... are installed here
    assert installed_version("no-such-distribution") is None


def test_a_version_installed_while_the_process_runs_is_seen(tmp_path, monkeypatch):
    """A long-lived process (a Prefect worker) records the libraries as they are now, not as they were."""
    from ganops.environment import installed_version

    monkeypatch.syspath_prepend(str(tmp_path))
    assert installed_version("ganops-probe") is None
    (tmp_path / "ganops_probe-1.2.3.dist-info").mkdir()
    assert installed_version("ganops-probe") == "1.2.3"


def test_a_record_in_another_key_order_is_rewritten(project):
    """Same items in another order are other bytes: DVC and a clean clone must see what the code writes."""
    layout = Layout(project)
    assert validate(project).returncode == 0
    written = layout.libraries.read_text()
    shuffled = dict(reversed(list(json.loads(written).items())))
    layout.libraries.write_text(json.dumps(shuffled, indent=2) + "\n")
    assert validate(project).returncode == 0 and remembered(project)
    assert layout.libraries.read_text() == written
