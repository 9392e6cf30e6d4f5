"""Learning-rate schedules, as a pure function of (step, run length): a resumed run sets exactly
the rates an uninterrupted one would, with no scheduler state to checkpoint."""

from __future__ import annotations

import math

import torch


def lr_factor(schedule: str, step: int, total: int) -> float:
    """The share of the base rate at ``step`` (0-based) of a ``total``-step run."""
    progress = step / max(total, 1)
    if schedule == "linear":
        return 1.0 - progress
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return 1.0


def depends_on_length(schedule: str) -> bool:
    return schedule != "constant"


def set_lr(optimizer: torch.optim.Optimizer, base: float, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = base * factor
