"""Progress reporting: a tqdm bar on a terminal, periodic plain log lines otherwise (CI, DVC logs)."""

from __future__ import annotations

import logging
import sys
import time

from tqdm import tqdm

log = logging.getLogger("ganops.progress")


class Progress:
    """Counts units of work towards ``total``; ``update`` takes optional scalar stats to show."""

    def __init__(
        self, total: int, desc: str, unit: str = "step", initial: int = 0, log_every_s: float = 10.0
    ):
        self.total, self.desc, self.unit = total, desc, unit
        self.done = initial
        self._start_done, self._start = initial, time.perf_counter()
        self._last_log = self._start
        self._log_every_s = log_every_s
        self._bar = (
            tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
            if sys.stderr.isatty()
            else None
        )

    def update(self, n: int = 1, **stats: float) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            if stats:
                self._bar.set_postfix({k: f"{v:.3g}" for k, v in stats.items()}, refresh=False)
            return
        now = time.perf_counter()
        if now - self._last_log >= self._log_every_s or self.done >= self.total:
            self._last_log = now
            rate = (self.done - self._start_done) / max(now - self._start, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else float("inf")
            shown = " ".join(f"{k}={v:.4g}" for k, v in stats.items())
            log.info(
                "%s %d/%d (%.0f%%) %.1f %s/s ETA %s %s",
                self.desc,
                self.done,
                self.total,
                100 * self.done / max(self.total, 1),
                rate,
                self.unit,
                _clock(eta),
                shown,
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _clock(seconds: float) -> str:
    if seconds == float("inf"):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s"
