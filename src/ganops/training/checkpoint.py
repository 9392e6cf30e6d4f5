"""Training checkpoints in a folder DVC keeps between runs (``persist: true``).

A checkpoint holds everything the next step depends on (weights, optimizer moments, EMA,
the noise generator's state, the loss history), so a resumed run continues the same random
stream and ends bit-identical to an uninterrupted one on CPU. Each checkpoint records a
fingerprint of the settings that shape training; a run with other settings starts afresh
instead of resuming someone else's model.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import torch

from ganops.files import save_torch

log = logging.getLogger(__name__)

_NAME = re.compile(r"step_(\d{8})\.pt$")
KEEP = 2  # the newest two, so a file damaged by a crash mid-write still leaves one good checkpoint


def _by_step(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.search(p.name))]
    return sorted(found)


def save_checkpoint(folder: Path, step: int, state: dict) -> Path:
    path = folder / f"step_{step:08d}.pt"
    save_torch(state, path)
    for _, old in _by_step(folder)[:-KEEP]:
        old.unlink()
    return path


def load_latest(folder: Path, fingerprint: str, max_step: int) -> dict | None:
    """The newest readable checkpoint made with ``fingerprint`` at or before ``max_step``, else None."""
    for step, path in reversed(_by_step(folder)):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # a truncated file from a killed run: fall back to the older one
            log.warning("checkpoint %s is unreadable (%s); trying an older one", path, err)
            continue
        if state.get("fingerprint") != fingerprint:
            log.info("checkpoints in %s were made with other settings; starting afresh", folder)
            return None
        if step <= max_step:
            return state
    return None


def clear(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
