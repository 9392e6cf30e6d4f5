"""dvc.lock as the record both runners share: is a stage up to date, and record one that ran.

The Prefect flow asks DVC (through its Python API) whether a stage's deps, params and outputs on
disk are exactly what dvc.lock recorded; only then is a cached result trusted. After it runs a
stage it commits it to dvc.lock, so a later ``dvc repro`` skips it too. While it does either, it
holds DVC's own workspace lock, so it never interleaves with a ``dvc repro`` in the same folder.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path

from ganops.errors import ConfigError
from ganops.stages import BY_NAME

log = logging.getLogger(__name__)

WAIT_SECONDS = 5


@contextlib.contextmanager
def locked_repo(root: Path) -> Iterator[object]:
    """DVC's Repo for ``root``, holding its workspace lock (waiting while another DVC process has it)."""
    from dvc.exceptions import NotDvcRepoError
    from dvc.lock import LockError
    from dvc.repo import Repo, lock_repo

    try:
        repo = Repo(str(root))
    except NotDvcRepoError:
        raise ConfigError(
            f"{root}: not a DVC project; run `dvc init` there (the flow shares dvc.lock)"
        ) from None
    # DVC resolves stage names and output paths against the working directory, as its CLI does.
    with repo, contextlib.chdir(root), contextlib.ExitStack() as stack:
        while True:
            try:
                stack.enter_context(lock_repo(repo))
                break
            except LockError:
                log.info("another DVC process holds %s's lock; waiting %d s", root, WAIT_SECONDS)
                time.sleep(WAIT_SECONDS)
        yield repo


def changes(repo, stage: str) -> list:
    """What DVC would rerun ``stage`` for (changed deps/params/outs, 'always changed'); [] if nothing."""
    target = BY_NAME[stage].target
    return repo.status(targets=[target]).get(target, [])


def record(repo, stage: str) -> None:
    """Write the stage's current deps, params and outputs into its lock file (and outputs into DVC's cache)."""
    repo.commit(BY_NAME[stage].target, force=True)
