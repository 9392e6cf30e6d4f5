"""Training checkpoints, one folder per training run, side by side under models/checkpoints/.

A checkpoint holds everything the next step depends on (weights, optimizer moments, EMA, the
noise generator's state, the loss history), so a resumed run continues the same random stream
and ends bit-identical to an uninterrupted one on CPU. A run is named by its fingerprint: the
settings, data, code and library versions that shape training. A run with another fingerprint
gets its own folder instead of deleting this one, so an aborted experiment never costs the main
run its resume. Folders are pruned by a policy, and only after a run has finished:

- inside a run: the newest ``KEEP_STEPS`` step checkpoints (a file damaged by a crash mid-write
  still leaves one good one) plus ``best.pt`` (the best live FID);
- across runs: the ``KEEP_RUNS`` most recently used run folders.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path

import torch

from ganops.files import save_torch, write_json

log = logging.getLogger(__name__)

_NAME = re.compile(r"step_(\d{8})\.pt$")
KEEP_STEPS = 2
KEEP_RUNS = 3
RUN_RECORD = "run.json"  # what the fingerprint was made of, for people; its mtime marks last use
FINISHED = "finished.json"  # the step at which the run last finished (a later checkpoint: interrupted)


def run_folder(root: Path, fingerprint: str) -> Path:
    return root / fingerprint[:16]


def _by_step(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.search(p.name))]
    return sorted(found)


def open_run(folder: Path, material: dict) -> None:
    """Create (or touch) a run folder and record what its fingerprint covers."""
    folder.mkdir(parents=True, exist_ok=True)
    write_json(folder / RUN_RECORD, material)


def save_checkpoint(folder: Path, step: int, state: dict) -> Path:
    path = folder / f"step_{step:08d}.pt"
    save_torch(state, path)
    for _, old in _by_step(folder)[:-KEEP_STEPS]:
        old.unlink(missing_ok=True)
    return path


def load_latest(folder: Path, fingerprint: str, max_step: int) -> dict | None:
    """The newest readable checkpoint of this run at or before ``max_step``, else None."""
    for step, path in reversed(_by_step(folder)):
        if step > max_step:
            continue
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated file from a killed run: fall back to the older one
            log.warning("checkpoint %s is unreadable (%s); trying an older one", path, err)
            continue
        if state.get("fingerprint") == fingerprint:
            return state
        log.warning("checkpoint %s belongs to another run (fingerprint differs); ignoring it", path)
    return None


def mark_finished(folder: Path, step: int) -> None:
    write_json(folder / FINISHED, {"step": step})


def unfinished_with_other_world_size(root: Path, material: dict, total: int) -> tuple[Path, int, int] | None:
    """A run of the same settings trained by another number of processes that was interrupted (it
    has a checkpoint after the step it last finished at) before ``total`` steps: its folder, world
    size and last step. It cannot be resumed exactly (the world size changes the bits), so the
    caller refuses to start over beside it. A run that finished is left alone: a longer run with
    another world size starts its own."""

    def without_world_size(record: dict) -> dict:
        return {key: value for key, value in record.items() if key != "world_size"}

    ours = json.loads(json.dumps(material))  # as it reads back from run.json
    if not root.is_dir():
        return None
    for folder in sorted(root.iterdir()):
        record = folder / RUN_RECORD
        if not record.is_file():
            continue
        theirs = json.loads(record.read_text())
        steps = [step for step, _ in _by_step(folder)]
        finished = json.loads((folder / FINISHED).read_text())["step"] if (folder / FINISHED).is_file() else 0
        if (
            theirs.get("world_size", 1) != ours.get("world_size", 1)
            and without_world_size(theirs) == without_world_size(ours)
            and steps
            and finished < max(steps) < total
        ):
            return folder, theirs.get("world_size", 1), max(steps)
    return None


def prune_runs(root: Path, keep: Path) -> list[Path]:
    """Remove all but the ``KEEP_RUNS`` most recently used run folders (never ``keep``)."""
    if not root.is_dir():
        return []

    def last_used(folder: Path) -> float:
        record = folder / RUN_RECORD
        return record.stat().st_mtime if record.exists() else folder.stat().st_mtime

    runs = sorted((p for p in root.iterdir() if p.is_dir()), key=last_used, reverse=True)
    removed = [p for p in runs if p != keep][KEEP_RUNS - 1 :]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
        log.info("pruned checkpoints of an older training run: %s", folder)
    return removed


def publish_folder(source: Path, target: Path) -> None:
    """Make ``target`` a copy of ``source`` (sample grids of the finished run -> reports/samples)."""
    staging = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging) if source.is_dir() else staging.mkdir(parents=True)
    old = target.with_name(f".{target.name}.{os.getpid()}.old")
    if target.exists():
        os.replace(target, old)
    os.replace(staging, target)
    shutil.rmtree(old, ignore_errors=True)
