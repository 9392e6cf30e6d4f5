"""A lock shared by every client of one MLflow registry, for stores that are not a local file.

MLflow has no compare-and-set on tags or aliases (the last write wins), but it has one atomic
test-and-set: creating a registered model whose name exists fails (the name is the table's primary
key, so PostgreSQL or MySQL decide between two concurrent creations). The lease is therefore a
registered model ``<model>.lock``, created with the holder's unique token in one call and deleted
on release. While held, a heartbeat thread bumps its ``ganops.lock.beat`` tag.

A holder that died leaves the lock behind; a waiter breaks it once the lock's token and beat have
not changed for ``ttl_s`` seconds of the waiter's own clock (no clocks are compared across
machines). The holder checks that the lock still carries its token before and after each alias
move (``verify``), so a holder whose lease was broken (it stalled for longer than ``ttl_s``) fails
instead of overwriting what the new holder did.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid

from ganops.errors import RegistryError, TransientRegistryError

log = logging.getLogger(__name__)

TOKEN_TAG = "ganops.lock.token"
HOLDER_TAG = "ganops.lock.holder"
BEAT_TAG = "ganops.lock.beat"
_GONE = ("RESOURCE_DOES_NOT_EXIST",)
_TAKEN = ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS")


def lock_name(model_name: str) -> str:
    return f"{model_name}.lock"


class RegistryLease:
    """Mutual exclusion among the registry's writers: ``acquire()``, ``verify()``, ``release()``."""

    def __init__(self, client, model_name: str, ttl_s: float = 120.0, wait_s: float = 900.0) -> None:
        self.client, self.name = client, lock_name(model_name)
        self.ttl_s, self.wait_s = ttl_s, wait_s
        self.token: str | None = None
        self._stop = threading.Event()
        self._beater: threading.Thread | None = None

    # --- reading ---------------------------------------------------------------------------
    def _current(self) -> tuple[str, str, str] | None:
        """(token, beat, holder) of the lock as stored, or None when nobody holds it."""
        from mlflow.exceptions import MlflowException

        try:
            tags = self.client.get_registered_model(self.name).tags
        except MlflowException as err:
            if err.error_code in _GONE:
                return None
            raise
        return tags.get(TOKEN_TAG, ""), tags.get(BEAT_TAG, ""), tags.get(HOLDER_TAG, "unknown")

    def verify(self) -> None:
        """Fail unless this process still holds the lock (a stalled holder may have been broken)."""
        current = self._current()
        if self.token is None or current is None or current[0] != self.token:
            holder = current[2] if current else "nobody"
            raise TransientRegistryError(
                f"lost the registry lock {self.name} (now held by {holder}): this process stalled for "
                f"longer than its {self.ttl_s:.0f} s lease and another writer took over. Nothing was "
                "overwritten; rerun the register stage (it finds and completes its version)"
            )

    # --- writing ---------------------------------------------------------------------------
    def _try_create(self, token: str) -> bool:
        from mlflow.exceptions import MlflowException

        holder = f"{socket.gethostname()} pid {os.getpid()}"
        try:
            self.client.create_registered_model(
                self.name,
                tags={TOKEN_TAG: token, HOLDER_TAG: holder, BEAT_TAG: "0"},
                description="ganops registration lock: held while a pipeline registers or an alias moves. "
                "Delete it by hand only if its holder is dead.",
            )
            return True
        except MlflowException as err:
            # Taken; or taken and released between the failed insert and MLflow's read-back.
            if err.error_code in _TAKEN + _GONE:
                return False
            raise

    def acquire(self) -> None:
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.wait_s
        seen, seen_since = None, time.monotonic()
        while not self._try_create(token):
            current = self._current()
            now = time.monotonic()
            if current != seen:
                if current is not None and (seen is None or current[0] != seen[0]):
                    log.info("waiting for registry lock %s, held by %s", self.name, current[2])
                seen, seen_since = current, now
            elif current is not None and now - seen_since > self.ttl_s:
                self._break(current)
                continue
            if now > deadline:
                raise RegistryError(
                    f"registry lock {self.name} is held by {current[2] if current else 'someone'} for more "
                    f"than {self.wait_s:.0f} s. If that process is dead, wait {self.ttl_s:.0f} s for the "
                    "lease to expire or delete the registered model by hand, then rerun"
                )
            time.sleep(random.uniform(0.1, 0.5))  # jitter: waiters do not retry in lockstep
        self.token = token
        self._stop.clear()
        self._beater = threading.Thread(target=self._beat, name="registry-lease", daemon=True)
        self._beater.start()

    def _break(self, stale: tuple[str, str, str]) -> None:
        """Delete a lock whose holder stopped beating, if it is still the same one (best effort: a
        holder that releases and re-acquires in the few ms between this read and the delete loses
        its lock, and then fails its next ``verify``)."""
        from mlflow.exceptions import MlflowException

        if self._current() != stale:
            return
        log.warning("breaking registry lock %s: %s stopped renewing it", self.name, stale[2])
        try:
            self.client.delete_registered_model(self.name)
        except MlflowException as err:
            if err.error_code not in _GONE:
                raise

    def _beat(self) -> None:
        beat = 0
        while not self._stop.wait(self.ttl_s / 4):
            beat += 1
            try:
                current = self._current()
                if current is None or current[0] != self.token:
                    return  # broken: verify() will say so in the holder's thread
                self.client.set_registered_model_tag(self.name, BEAT_TAG, str(beat))
            except Exception as err:  # a blip: the next beat retries; a long outage lets the lease lapse
                log.warning("could not renew registry lock %s: %s", self.name, err)

    def release(self) -> None:
        from mlflow.exceptions import MlflowException

        self._stop.set()
        if self._beater is not None:
            self._beater.join()
        try:
            current = self._current()
            if current is not None and current[0] == self.token:
                self.client.delete_registered_model(self.name)
            else:
                log.warning("registry lock %s was no longer ours at release; left it alone", self.name)
        except MlflowException as err:
            if err.error_code not in _GONE:
                raise
        finally:
            self.token = None
