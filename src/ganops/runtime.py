"""Seeding, the table of random streams, and device selection, shared by every stage that runs torch."""

from __future__ import annotations

import enum
import logging
import random
from dataclasses import dataclass

import numpy as np
import torch

from ganops.errors import ConfigError

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from the single ``seed`` in params."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@enum.unique
class Stream(enum.IntEnum):
    """Every random stream drawn from ``seed``, one number each, so that no two are correlated.

    A stream is ``stream(seed, Stream.X, *more)``: the same (seed, stream, more) always gives the same
    draws, which is what makes a resumed run bit-identical. The numbers are part of every trained
    model's bits: never renumber one; a new stream takes a new number (7 and 17 up are free).
    """

    LATENT_NOISE = 1  # train: G's input noise; its state is checkpointed, so resume continues it
    GRID_Z = 2  # train: the fixed latents of the sample grids
    SHUFFLE = 3  # train, per epoch: the order of the training images
    EVALUATOR_SHUFFLE = 4  # evaluator, per epoch: the order of its training images
    EVALUATE_Z = 5  # evaluate: the latents of the generated samples (benchmarks reuse them)
    EXPORT_PARITY_Z = 6  # export: the latents on which ONNX Runtime is compared with torch
    AUGMENT = 8  # train, per step: DiffAugment, horizontal flips and gradient-penalty mixing
    LIVE_Z = 9  # train: the fixed latents of live FID
    DROPOUT = 10  # train, per step: the seed of torch's global stream, which dropout draws from
    SELF_SUPERVISED = 11  # evaluator: the self-supervised objective's views
    SELF_CHECK = 12  # evaluator: the views of the self-supervised evaluator's own check
    DEGRADE = 13  # train, per batch: a restoration task's masks, blur, noise and JPEG quality
    EVALSET = 14  # evalset, per chunk: the degradations of the fixed evaluation set
    LIVE_DEGRADE = 15  # train: the degradations of live quality's inputs
    EVALSET_WHOLE = 16  # evalset, per photo: the degradation of each whole held-out photo


def stream(seed: int, which: Stream, *more: int) -> torch.Generator:
    """The CPU generator of stream ``which`` of the run seeded by ``seed``, e.g. per (epoch) or (step)."""
    return seeded_generator(seed, which, *more)


def seeded_generator(*seed_parts: int) -> torch.Generator:
    """A CPU generator seeded from several integers; callers name their stream with ``stream``."""
    combined = 0
    for part in seed_parts:
        combined = (combined * 1_000_003 + int(part)) % 2**63
    return torch.Generator().manual_seed(combined)


@dataclass(frozen=True)
class Draws:
    """Random draws per image of the global batch, of which this process holds rows ``rank``.

    On one process this is ``generator`` itself. Under data parallelism every rank draws the same
    ``size`` times larger tensor from the same (seed, step) stream and keeps its own rows: no two
    ranks repeat a draw, the global batch gets exactly the draws one process would give it, and
    the generators of all ranks stay in step. Draws are made on the CPU, then moved to ``device``.
    """

    generator: torch.Generator
    rank: int = 0
    size: int = 1

    def rand(self, n: int, *shape: int, device: torch.device) -> torch.Tensor:
        """Uniform [0, 1) of shape (n, *shape) for this rank's n images."""
        return self._mine(torch.rand(n * self.size, *shape, generator=self.generator), n, device)

    def randint(self, low: int, high: int, n: int, *shape: int, device: torch.device) -> torch.Tensor:
        """Integers in [low, high) of shape (n, *shape) for this rank's n images."""
        drawn = torch.randint(low, high, (n * self.size, *shape), generator=self.generator)
        return self._mine(drawn, n, device)

    def _mine(self, drawn: torch.Tensor, n: int, device: torch.device) -> torch.Tensor:
        return drawn[self.rank * n : (self.rank + 1) * n].to(device)


def pick_device(requested: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; an explicit CUDA request without CUDA is an error."""
    if requested == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(
                "train.device: cuda was requested but no CUDA device is visible; set it to auto or cpu"
            )
    log.info(
        "device: %s%s", device, f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    )
    return device
