"""Real training batches: a fresh shuffle per epoch from (seed, epoch), optional horizontal flips.

The whole uint8 dataset stays on the device; batch ``b`` of the run is a pure function of
(seed, b), so a resumed run reads exactly the batches an uninterrupted one would. A batch is the
global one: under data parallelism every rank reads the same and the loop keeps the rank's rows.
"""

from __future__ import annotations

import torch

from ganops.data.prepared import to_unit_range
from ganops.runtime import Draws, Stream, stream
from ganops.training.augment import hflip


class RealBatches:
    def __init__(
        self,
        *,
        images: torch.Tensor,  # uint8 (N, C, H, W) on the device
        labels: torch.Tensor | None,  # int64 (N,) on the device, or None
        batch_size: int,
        seed: int,
        flip: bool,
        memory_format: torch.memory_format,
    ) -> None:
        self.images, self.labels, self.batch_size, self.seed = images, labels, batch_size, seed
        self.flip, self.memory_format = flip, memory_format
        self.per_epoch = len(images) // batch_size
        self._perm, self._perm_epoch = None, -1

    def epoch_of(self, batch: int) -> int:
        return batch // self.per_epoch

    def get(self, batch: int, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Batch number ``batch`` of the run: images in [-1, 1] and their labels (or None)."""
        epoch, i = divmod(batch, self.per_epoch)
        if epoch != self._perm_epoch:
            self._perm = torch.randperm(len(self.images), generator=stream(self.seed, Stream.SHUFFLE, epoch))
            self._perm_epoch = epoch
        idx = self._perm[i * self.batch_size : (i + 1) * self.batch_size].to(self.images.device)
        real = to_unit_range(self.images[idx]).contiguous(memory_format=self.memory_format)
        if self.flip:
            real = hflip(real, Draws(rng))  # drawn for the whole global batch
        labels = None if self.labels is None else self.labels[idx]
        return real.contiguous(memory_format=self.memory_format), labels
