"""validate: the first stage. Checks params.yaml and records the inputs DVC cannot see.

It runs on every ``dvc repro`` (``always_changed``) and before any other stage, so a bad value
(a typo in ``dvc exp run -S``) stops the pipeline here, before DVC deletes any stage's outputs.
It writes two small records whose bytes change only when what they describe changes:

- reports/inputs/libraries.json: the versions of the libraries that shape numbers (every stage
  depends on it, so an upgrade reruns what it can affect);
- reports/inputs/source.json: a content fingerprint of the raw data files (prepare depends on it,
  so images added to a folder rerun prepare).

Because it runs on every repro, its start-up is part of every no-op ``dvc repro``. Checking the
params costs most of it (pydantic and the params model: 0.15 s of 0.2 s), and their verdict can
change only with the bytes of params.yaml, of ganops' code and of the validating libraries. A
pass is remembered under that key (``Layout.verdict``, untracked): the next run with the same key
goes straight to the records (``run_remembered``, which the ``ganops`` entry point tries before
it loads the CLI). The records themselves are measured afresh on every run.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import ganops
from ganops.environment import installed_version, library_versions
from ganops.files import read_json, write_json
from ganops.rawdata import fingerprint, hash_cache_path
from ganops.stages import Layout, timed_stage

if TYPE_CHECKING:
    from ganops.config import Params

log = logging.getLogger(__name__)

VALIDATING_LIBRARIES = ("pydantic", "pydantic-core", "PyYAML")  # with ganops' code, they judge params


def run(params: Params, layout: Layout, params_path: Path, **_) -> dict:
    p = params.data
    data = {"source": p.source, "root": p.root, "pairs": p.pairs, "task": params.task}
    libraries = _write_records(data, layout)
    write_json(layout.verdict, {"key": verdict_key(params_path), "data": data})
    return libraries


def run_remembered(params_path: Path, root: Path = Path(".")) -> bool:
    """The validate stage without checking params, if these params passed with this code; else False."""
    layout = Layout(root)
    try:
        verdict = read_json(layout.verdict)
    except (OSError, ValueError):
        return False
    if verdict.get("key") != verdict_key(params_path):
        return False
    with timed_stage("validate", layout) as facts:
        facts["params"] = "passed before (same params.yaml, code and libraries)"
        _write_records(verdict["data"], layout)
    return True


def verdict_key(params_path: Path) -> str:
    """What a params check depends on: the file's bytes, ganops' code and the validating libraries."""
    digest = hashlib.sha256(Path(params_path).read_bytes())
    package = Path(ganops.__file__).parent
    for module in sorted(package.rglob("*.py")):
        digest.update(module.relative_to(package).as_posix().encode() + b"\0" + module.read_bytes())
    digest.update(sys.version.encode())
    for name in VALIDATING_LIBRARIES:
        digest.update(f"\0{name}=={installed_version(name)}".encode())
    return digest.hexdigest()


def _write_records(data: dict, layout: Layout) -> dict:
    """The records, after checking what the params cannot: that paired data pairs up (names listed).

    How the raw data pairs up (data.pairs: auto depends on the task and on the folder) is part of the
    source record, which prepare depends on: prepare reruns when a new task or folder pairs it anew,
    and only then (its params are data's, not the task's)."""
    libraries = library_versions()
    source = fingerprint(data["source"], data["root"], hash_cache_path(layout.root))
    pairs = _pairs(data)
    if pairs:  # absent for unpaired data: the record keeps the bytes it had before pairs existed
        from ganops.data.pairs import paired_files

        paired_files(Path(data["root"]), pairs)
        source["pairs"] = pairs
    _write_if_changed(layout.libraries, libraries)
    _write_if_changed(layout.source, source)
    log.info(
        "params are valid; raw data: %s files (%.1f MB) of %s",
        source["files"],
        source["bytes"] / 1e6,
        source["source"],
    )
    return libraries


def _pairs(data: dict) -> str | None:
    """How the raw data pairs up; None for unpaired data (and for a verdict written before pairs)."""
    from ganops.data.locations import resolve_pairs

    if "task" not in data or not data.get("root"):
        return None
    return resolve_pairs(data.get("pairs"), data["task"], data["source"], data["root"])


def _write_if_changed(path: Path, record: dict) -> None:
    """Same record, same file: no fsync, and DVC finds the file as it left it. The records are flat,
    so the same items in the same order are the same bytes (a new key order is written)."""
    try:
        if list(read_json(path).items()) == list(record.items()):
            return
    except (OSError, ValueError):
        pass
    write_json(path, record)
