"""One lock per stage and workspace, so two runners never interleave writes to the same outputs.

DVC locks its own repository, but the same stage can also run from the Prefect flow or by hand
(``ganops train``) in the same folder; without a lock, one run's pruning could delete the other's
checkpoint mid-read, or prepare's arrays and manifest could come from different runs. The second
runner waits, and says what it waits for.

The lock is ``flock`` on the file (what filelock's Unix lock does, so the two exclude each other),
called directly: importing filelock costs 40 ms, which every no-op ``dvc repro`` paid in validate.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from collections.abc import Iterator
from pathlib import Path

log = logging.getLogger(__name__)

HELD_BY_LAUNCHER = "GANOPS_STAGE_LOCK_HELD"  # set in the environment of workers a stage launched


@contextlib.contextmanager
def stage_lock(path: Path, stage: str) -> Iterator[None]:
    # The stage's launcher holds it for its workers (training.launch); under torchrun by hand, the
    # node's rank 0 holds it for all.
    if os.environ.get(HELD_BY_LAUNCHER) or int(os.environ.get("LOCAL_RANK", "0")) != 0:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:  # closing the file releases the lock, also when the process dies
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another run of the %s stage in this workspace to finish (%s)", stage, path)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
