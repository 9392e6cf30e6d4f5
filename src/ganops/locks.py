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


@contextlib.contextmanager
def stage_lock(path: Path, stage: str) -> Iterator[None]:
    from filelock import FileLock, Timeout

    if int(os.environ.get("LOCAL_RANK", "0")) != 0:  # torchrun: the node's rank 0 holds it for all
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
