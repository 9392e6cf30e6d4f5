"""What a training run carries from one step to the next, and what its checkpoints hold.

``TrainState`` gathers the networks, their optimizers, G's moving average, the latent noise
stream and the run's records; ``state_dict()`` is a checkpoint and ``load_state_dict()`` a resume.
The records are named: one ``HistoryRow`` per step and one ``LiveRow`` per live measurement, whose
fields are the columns of reports/train/history.csv and live.csv. A checkpoint stores each list as
a float64 tensor (one row per record, columns in field order): float64 holds the int steps and
the losses (float32 values) exactly, so a resumed run writes the same CSV bytes.
"""

from __future__ import annotations

import csv
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, TypeVar

import torch
from torch import nn

from ganops.files import atomic_path
from ganops.training.ema import EMA


class HistoryRow(NamedTuple):
    """One training step, averaged over the global batch (the same on every rank)."""

    step: int  # steps done, counted from 1
    epoch: int  # the pass over the training images that the step's batches came from
    loss_d: float
    loss_g: float
    d_real: float  # D's mean probability of "real" on the reals
    d_fake: float  # and on the fakes


class LiveRow(NamedTuple):
    """One live measurement of the EMA generator (training.live)."""

    step: int
    fid_live: float
    class_coverage: float  # share of classes with >= 1% of the samples; NaN without class labels
    class_kl: float


Record = TypeVar("Record", HistoryRow, LiveRow)


def to_tensor(rows: Sequence[Record], kind: type[Record]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64).reshape(-1, len(kind._fields))


def from_tensor(values: torch.Tensor, kind: type[Record]) -> list[Record]:
    """The records ``to_tensor`` stored, with their int fields as ints again."""
    types = typing.get_type_hints(kind)
    return [
        kind(*(types[name](v) for name, v in zip(kind._fields, row, strict=True))) for row in values.tolist()
    ]


def write_csv(path: Path, rows: Sequence[Record], kind: type[Record]) -> None:
    """A header of the field names, then one line per record: ints as ints, floats to 6 digits."""
    types = typing.get_type_hints(kind)
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(kind._fields)
        for row in rows:
            writer.writerow(
                [int(v) if types[name] is int else f"{v:.6g}" for name, v in row._asdict().items()]
            )


@dataclass(eq=False)
class TrainState:
    """Everything the next step depends on (the real batches and per-step streams are functions
    of (seed, step), so they need no saving)."""

    fingerprint: str  # the run this state belongs to; checkpoint.load_latest skips other runs'
    G: nn.Module  # the bare networks, not their DDP or compiled wrappers
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    ema: EMA
    noise: torch.Generator  # the latent noise stream: a resumed run continues where it stopped
    step: int = 0  # steps done
    history: list[HistoryRow] = field(default_factory=list)
    live: list[LiveRow] = field(default_factory=list)

    def state_dict(self) -> dict:
        return {
            "fingerprint": self.fingerprint,
            "step": self.step,
            "G": self.G.state_dict(),
            "D": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "ema": self.ema.state_dict(),
            "noise": self.noise.get_state(),
            "history": to_tensor(self.history, HistoryRow),
            "live": to_tensor(self.live, LiveRow),
        }

    def load_state_dict(self, saved: dict) -> None:
        self.G.load_state_dict(saved["G"])
        self.D.load_state_dict(saved["D"])
        self.opt_g.load_state_dict(saved["opt_g"])
        self.opt_d.load_state_dict(saved["opt_d"])
        self.ema.load_state_dict(saved["ema"])
        self.noise.set_state(saved["noise"])
        self.history = from_tensor(saved["history"], HistoryRow)
        self.live = from_tensor(saved["live"], LiveRow)
        self.step = saved["step"]
