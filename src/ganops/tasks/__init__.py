"""Tasks: what the GAN learns. ``generate`` (noise in, image out) and the restorations ``inpaint``,
``superres`` and ``colorize`` (image in, image out: a degraded image and the original).

The training loop is one loop for all of them. It asks the task for each batch's ``Pair`` (what G
is called with and what D sees beside an image), for the task's extra G loss terms, and for the
inputs of sample grids and live quality; it never asks which task it runs. A task is built once
per run by ``build_task`` from the params, the device and the run's noise stream.

What every layer must know of a task (its input, head, mask, baseline, route, primary metric) is
its card (ganops.cards, no torch); a task object is the card plus what needs torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ganops import catalog
from ganops.cards import ImageToImage, TaskCard
from ganops.config import Params, TrainParams
from ganops.models import ArchSpec
from ganops.plugins import Registry
from ganops.runtime import Stream


@dataclass(frozen=True, kw_only=True)
class Pair:
    """G's inputs and the real images they pair with: one batch as the loop uses it."""

    inputs: tuple  # G(*inputs)
    real: torch.Tensor  # the real images, in [-1, 1]: what D sees as real and G's outputs are compared with
    y_real: torch.Tensor | None = None  # D's label argument for the real images (class-conditional)
    y_fake: torch.Tensor | None = None  # ... and for G's images
    seen: torch.Tensor | None = None  # the condition D sees beside an image (restoration), at its size

    def share(self, rows: Callable) -> Pair:
        """The pair of this rank's rows, given ``rows`` that takes them from a global batch."""
        return Pair(
            inputs=tuple(rows(x) for x in self.inputs),
            real=rows(self.real),
            y_real=rows(self.y_real),
            y_fake=rows(self.y_fake),
            seen=rows(self.seen),
        )

    def shown(self, images: torch.Tensor) -> torch.Tensor:
        """What D is given for ``images``: the images, beside the condition when there is one."""
        return images if self.seen is None else torch.cat([images, self.seen], dim=1)


class Task(Protocol):
    card: TaskCard
    name: str
    # What shapes the weights beyond the params, the data and the code (a file's sha256, by name):
    # part of the run's fingerprint, so a resumed run never mixes two of them.
    shaping: dict[str, str]

    def arch_spec(self, images: np.ndarray, labels: np.ndarray | None) -> ArchSpec: ...

    def pair(self, real: torch.Tensor, y_real: torch.Tensor | None, batch: int, G: torch.nn.Module) -> Pair:
        """The pair of the global batch ``real`` (number ``batch`` of the run: the prepared images, with
        their paired inputs stacked after them when the data is paired); every rank makes the same one
        from the same streams, and the loop keeps the rank's rows."""
        ...

    def image_budget(self, train: TrainParams) -> tuple[int | None, str]:
        """Real images to train on when train.epochs is not set, and the param that says so."""
        ...

    def g_terms(self, fake: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """G's loss terms besides the adversarial one, by name (none for generate)."""
        ...

    def warmup_steps(self, train: TrainParams) -> int:
        """The first steps in which G learns from ``g_terms`` alone, D waiting: a share of the image
        budget (not of a run capped by train.max_steps or sized by epochs), so a resumed run warms up
        exactly as an uninterrupted one."""
        ...

    def grid(self, G: torch.nn.Module, images: np.ndarray) -> tuple[torch.Tensor, int]:
        """A sample grid of G (images in [-1, 1]) and its images per row; ``images`` are uint8 examples."""
        ...

    def live_inputs(self, images: np.ndarray) -> list[tuple]:
        """G's inputs for live quality, fixed for the run: one tuple per batch; ``images`` are uint8 test images."""
        ...


class ImageTask(Task, Protocol):
    """A task whose G maps an image to an image: what the evaluation set and scoring ask besides."""

    facts: ImageToImage  # card.image_to_image
    scale: int  # output size / input size
    size_multiple: int  # a target's height and width are a multiple of it

    def check(self, images: np.ndarray) -> None:
        """Refuse prepared images the task cannot learn from (DataError naming the fix)."""
        ...

    def inputs_for(self, images: np.ndarray, which: Stream) -> list[torch.Tensor]:
        """G's inputs for uint8 ``images``, degraded from (seed, which, chunk)."""
        ...

    def whole_inputs(self, photos: list[np.ndarray], which: Stream) -> list[np.ndarray]:
        """G's input for each uint8 photo at its own size, degraded from (seed, which, its index)."""
        ...

    def baseline(self, inputs: torch.Tensor, channels: int) -> torch.Tensor:
        """The card's classical method on G's inputs."""
        ...

    def hole(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """The mask (1 = hole) within G's inputs, when the card's input has one."""
        ...

    def own_scores(self, restored: torch.Tensor, targets: torch.Tensor) -> dict[str, np.ndarray]: ...
    def own_report(self, restored: torch.Tensor, targets: torch.Tensor) -> dict[str, float]: ...
    def own_references(
        self, targets: list[torch.Tensor], tiles: torch.Tensor
    ) -> tuple[dict, dict[str, str]]: ...


TaskBuilder = Callable[[Params, torch.device, torch.Generator, Path | None], Task]
TASKS: Registry[TaskBuilder] = Registry(catalog.TASKS)


def build_task(
    params: Params,
    device: torch.device,
    noise: torch.Generator,
    evaluator: Path | None = None,
) -> Task:
    """The run's task: ``noise`` is the checkpointed stream; ``evaluator``: models/evaluator.pt when
    the task is built to train (restoration's feature matching reads it), None when it only degrades
    or scores."""
    return TASKS.get(params.task)(params, device, noise, evaluator)


# Registration happens on import of the modules below.
from ganops.tasks import generate, restoration, translate  # noqa: E402,F401
