"""Data-parallel training: process group, rank-0 writes, the rank's share of a batch.

The train stage starts its own N workers when ``train.processes`` asks for more than one
(training.launch), and ``torchrun -m ganops train`` does the same by hand; either way each worker
runs the ordinary train stage, and the launcher's environment (RANK, WORLD_SIZE, LOCAL_RANK,
MASTER_ADDR/PORT) is what tells them apart. Without it, ``World`` is a single process and every
method is the identity, so the single-process path (and its bit-identical resume) is untouched.

``train.batch_size`` stays the *global* batch: every rank makes the same global batch of indices,
latents, degradations and per-image augmentation draws from the same seeded streams and keeps
its contiguous share, and DDP averages the gradients, so N processes take the steps one process
would take with that batch, up to what is per rank by nature: BatchNorm's statistics on CPU
(SyncBatchNorm needs CUDA, where it is used), dropout (seeded per rank) and the order in which
floating-point sums run. Those change the bits, so a run's fingerprint includes its world size.
"""

from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass

import torch
from torch import nn

from ganops.errors import ConfigError
from ganops.runtime import Draws, pick_device

log = logging.getLogger(__name__)


def rank() -> int:
    """This process's rank (0 outside torchrun); read from the environment so it holds before init."""
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Only rank 0 writes files (logs, samples, checkpoints, the model, history, reports)."""
    return rank() == 0


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, batch: torch.Tensor | None) -> torch.Tensor | None:
        """This rank's contiguous rows of a global batch (all of it on one process)."""
        if batch is None or self.size == 1:
            return batch
        per = batch.shape[0] // self.size
        return batch[self.rank * per : (self.rank + 1) * per]

    def draws(self, generator: torch.Generator) -> Draws:
        """Per-image draws from ``generator`` for this rank's rows of the global batch."""
        return Draws(generator, self.rank, self.size)

    def wrap(self, module: nn.Module) -> nn.Module:
        """The module to run forward passes through: DDP when distributed, else the module itself.
        On CUDA its BatchNorm layers become SyncBatchNorm, in place (statistics over the global
        batch; same weights, running statistics and state_dict keys). State (state_dict, EMA,
        checkpoints) is read from the unwrapped module."""
        if self.size == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        if self.device.type != "cuda":
            return DistributedDataParallel(module)
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        return DistributedDataParallel(module, device_ids=[self.device.index])

    def mean(self, values: list[float]) -> list[float]:
        """Average logged scalars over ranks, so rank 0's history describes the global batch."""
        if self.size == 1:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(t)
        return (t / self.size).tolist()

    def same_on_all_ranks(self, value: int, what: str) -> None:
        """Stop when ranks disagree, e.g. nodes that resumed from different checkpoint folders."""
        if self.size == 1:
            return
        t = torch.tensor([value, -value], dtype=torch.int64, device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        if t[0].item() != -t[1].item():
            raise ConfigError(
                f"{what} differs between ranks ({-t[1].item()} to {t[0].item()}); every node must see the "
                "same models/checkpoints: put it on a shared filesystem or remove it on all nodes"
            )

    def barrier(self) -> None:
        if self.size > 1:
            torch.distributed.barrier()


def setup(requested_device: str, batch_size: int) -> World:
    """The world this process trains in; joins torchrun's process group when WORLD_SIZE > 1."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World(0, 1, pick_device(requested_device))
    if batch_size % size:  # checked before joining, so every rank stops with the same message
        raise ConfigError(
            f"train.batch_size: {batch_size} (the global batch) is not divisible by the world size {size}; "
            f"use a multiple of {size} or another --nproc_per_node / --nnodes"
        )
    device = pick_device(requested_device)
    if device.type == "cuda":  # one GPU per process: LOCAL_RANK picks it
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend)
        atexit.register(_close)
    world = World(torch.distributed.get_rank(), size, device)
    if not world.is_main:  # one voice: the other ranks only report warnings and errors
        logging.getLogger().setLevel(logging.WARNING)
    log.info(
        "distributed: %d processes (%s), global batch %d, %d per rank",
        size,
        backend,
        batch_size,
        batch_size // size,
    )
    return world


def _close() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
