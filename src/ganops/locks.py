"""One lock per stage and workspace, so two runners never interleave writes to the same outputs.

DVC locks its own repository, but the same stage can also run from the Prefect flow or by hand
(``ganops train``) in the same folder; without a lock, one run's pruning could delete the other's
checkpoint mid-read, or prepare's arrays and manifest could come from different runs. The second
runner waits, and says what it waits for.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

HELD_BY_LAUNCHER = "GANOPS_STAGE_LOCK_HELD"  # set in the environment of workers a stage launched


@contextlib.contextmanager
def stage_lock(path: Path, stage: str) -> Iterator[None]:
    from filelock import FileLock, Timeout

    # The stage's launcher holds it for its workers (training.launch); under torchrun by hand, the
    # node's rank 0 holds it for all.
    if os.environ.get(HELD_BY_LAUNCHER) or int(os.environ.get("LOCAL_RANK", "0")) != 0:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("waiting for another run of the %s stage in this workspace to finish (%s)", stage, path)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
