"""The restoration tasks: G learns to undo a degradation of the training images (pix2pix).

Each batch's degradation is drawn from (seed, Stream.DEGRADE, batch), so a resumed run degrades
exactly as an uninterrupted one. G's loss is the adversarial term plus ``restore.l1_weight`` x L1
to the original, plus, when ``restore.feature_weight`` > 0, feature matching: L1 between the domain
evaluator's features (models/evaluator.pt, trained here on the same data: no downloaded weights) of
G's output and of the original. D (a PatchGAN) sees an image beside G's input.

A task's facts (its input encoding, mask, baseline, primary metric, ...) are its card (ganops.cards);
a task's class adds only what needs torch: how it degrades (``degrade``), how its input looks in a
grid (``preview``), and any scores of its own (``own_scores``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ganops import cards
from ganops.config import Params, TrainParams
from ganops.data.prepared import to_unit_range
from ganops.errors import ConfigError, DataError
from ganops.files import sha256_file
from ganops.metrics import restoration as rm
from ganops.models import ArchSpec
from ganops.runtime import Stream, stream
from ganops.tasks import TASKS, Pair
from ganops.tasks import degrade as deg

GRID_ROWS = 8


class Restoration:
    card: cards.TaskCard
    scale = 1  # output size / input size

    def __init_subclass__(cls, task: str, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        cls.card = cards.card(task)
        cls.facts = cls.card.image_to_image
        TASKS.register(task)(cls)

    @property
    def name(self) -> str:
        return self.card.name

    def __init__(
        self,
        params: Params,
        device: torch.device,
        noise: torch.Generator,
        evaluator: Path | None = None,
    ) -> None:
        self.params, self.device = params, device
        self.features, self.shaping = None, {}
        if params.restore.feature_weight > 0 and evaluator is not None:  # built for training
            self.features = self._frozen_features(evaluator, device)
            self.shaping = {"evaluator_sha256": sha256_file(evaluator)}

    @staticmethod
    def _frozen_features(evaluator: Path, device: torch.device) -> Callable[[torch.Tensor], torch.Tensor]:
        from ganops.metrics.evaluator import load_evaluator

        if not evaluator.is_file():
            raise ConfigError(
                f"restore.feature_weight: feature matching needs the domain evaluator, not found at "
                f"{evaluator}; run the evaluator stage first (`dvc repro evaluator`) or set it to 0"
            )
        net = load_evaluator(evaluator, device)
        net.requires_grad_(False)  # a fixed feature space: G's gradients pass through it, its weights stay
        return net.features

    # What differs per task.
    def degrade(self, images: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """G's input for ``images`` and what D sees beside an output (the input at the output's size)."""
        raise NotImplementedError

    def target(self, images: torch.Tensor) -> torch.Tensor:
        """The real image of each of ``images`` as the loop hands them (paired data: the pair)."""
        return images

    def preview(self, inputs: torch.Tensor, channels: int) -> torch.Tensor:
        """G's input drawn as an image of the output's size and channels, for grids."""
        raise NotImplementedError

    def own_scores(self, restored: torch.Tensor, targets: torch.Tensor) -> dict[str, np.ndarray]:
        """Per-image scores of this task beside PSNR and SSIM, by name."""
        return {}

    def own_report(self, restored: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        """Scores of this task over the whole set of ``restored`` images, by name."""
        return {}

    def own_references(self, targets: list[torch.Tensor], tiles: torch.Tensor) -> tuple[dict, dict[str, str]]:
        """What real images score on this task's own measures (``targets``: the evaluation set's
        originals, one batch per size; ``tiles``: theirs at the training size), and how the report
        explains them."""
        return {}, {}

    # The same for every task, from the card.
    def baseline(self, inputs: torch.Tensor, channels: int) -> torch.Tensor:
        """The classical method's output for G's inputs (the card's NumPy function, as the server runs it)."""
        outputs = self.facts.baseline.run(inputs.detach().float().cpu().numpy(), channels, self.scale)
        return torch.from_numpy(outputs).to(inputs.device)

    def hole(self, inputs: torch.Tensor) -> torch.Tensor | None:
        """The mask (1 = hole) of inputs, for tasks scored inside holes too."""
        return inputs[:, -1:] if self.facts.mask is not None else None

    @property
    def size_multiple(self) -> int:
        """What a target's height and width must be a multiple of: the U-Net's 2**depth at G's input."""
        return 2**self.params.restore.depth * self.scale

    def check(self, images: np.ndarray) -> None:
        """Refuse prepared data the task cannot learn from."""
        if self.facts.learns_colour and images.shape[1] != 3:
            raise DataError(
                f"task {self.name}: the prepared images have one channel; it learns from colour images. "
                "Use an RGB source (data.source=imagefolder with data.root=DIR of colour photos, or cifar10) "
                "with data.channels 3 or null"
            )
        multiple = self.size_multiple
        if images.shape[-1] % multiple or images.shape[-2] % multiple:
            raise DataError(
                f"task {self.name}: the prepared images are {images.shape[-2]}x{images.shape[-1]}, not a multiple of "
                f"{multiple} (2**restore.depth{' x restore.superres.factor' if self.scale > 1 else ''}); "
                "set data.image_size to a multiple, or lower restore.depth"
            )

        smallest = 3 * 2**self.params.restore.patch_depth  # PatchGAN's map is then at least 1x1
        if min(images.shape[-2:]) < smallest:
            raise DataError(
                f"task {self.name}: restore.patch_depth {self.params.restore.patch_depth} needs images of at least "
                f"{smallest}x{smallest}, the prepared ones are {images.shape[-2]}x{images.shape[-1]}; lower "
                "restore.patch_depth or raise data.image_size"
            )

    # What the loop asks.
    def arch_spec(self, images: np.ndarray, labels: np.ndarray | None) -> ArchSpec:
        self.check(images)
        m, r = self.params.model, self.params.restore
        return ArchSpec(
            arch="unet",
            latent_dim=0,
            image_size=images.shape[-1],
            channels=images.shape[1],
            g_width=r.g_width,
            d_width=r.d_width,
            spectral_norm=m.spectral_norm,
            d_dropout=m.d_dropout,
            task=self.name,
            scale=self.scale,
            depth=r.depth,
            patch_depth=r.patch_depth,
            dilated=r.dilated,
        )

    def pair(self, real: torch.Tensor, y_real: torch.Tensor | None, batch: int, G: torch.nn.Module) -> Pair:
        inputs, seen = self.degrade(real.detach(), stream(self.params.seed, Stream.DEGRADE, batch))
        return Pair(inputs=(inputs,), real=self.target(real), seen=seen)

    def image_budget(self, train: TrainParams) -> tuple[int | None, str]:
        if self.params.restore.images is None:
            return train.images, "train.images"
        return self.params.restore.images, "restore.images"

    def warmup_steps(self, train: TrainParams) -> int:
        warmup = self.params.restore.warmup
        images, named = self.image_budget(train)
        if warmup and images is None:
            raise ConfigError(
                f"restore.warmup {warmup} is a share of the image budget, and {named} is null; set {named}"
            )
        return round(warmup * (images or 0) / train.batch_size)

    def g_terms(self, fake: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
        fake, real = fake.float(), real.detach().float()
        terms = {"l1": self.params.restore.l1_weight * F.l1_loss(fake, real)}
        if self.features is not None:
            with torch.no_grad():
                target = self.features(real)
            terms["features"] = self.params.restore.feature_weight * F.l1_loss(self.features(fake), target)
        return terms

    def inputs_for(self, images: np.ndarray, which: Stream) -> list[torch.Tensor]:
        """G's inputs for uint8 ``images`` (as the loop hands them), degraded in chunks of 500 from
        (seed, which, chunk)."""
        batches = []
        for chunk, start in enumerate(range(0, len(images), 500)):
            real = to_unit_range(torch.from_numpy(images[start : start + 500])).to(self.device)
            batches.append(self.degrade(real, stream(self.params.seed, which, chunk))[0])
        return batches

    def whole_inputs(self, photos: list[np.ndarray], which: Stream) -> list[np.ndarray]:
        """G's input for each uint8 photo (CHW, any size), degraded alone from (seed, which, its index):
        masks sized to the photo, superres by the task's factor."""
        inputs = []
        for index, photo in enumerate(photos):
            real = to_unit_range(torch.from_numpy(photo[None])).to(self.device)
            degraded = self.degrade(real, stream(self.params.seed, which, index))[0]
            inputs.append(degraded[0].cpu().numpy())
        return inputs

    def grid(self, G: torch.nn.Module, images: np.ndarray) -> tuple[torch.Tensor, int]:
        given = to_unit_range(torch.from_numpy(images[:GRID_ROWS])).to(self.device)
        inputs = self.degrade(given, stream(self.params.seed, Stream.GRID_Z))[0]
        real = self.target(given)
        channels = real.shape[1]
        columns = [
            self.preview(inputs, channels),
            self.baseline(inputs.cpu(), channels).to(real.device),
            G(inputs).float(),
            real,
        ]
        return torch.stack(columns, dim=1).flatten(0, 1), len(columns)  # input | baseline | GAN | original

    def live_inputs(self, images: np.ndarray) -> list[tuple]:
        return [(batch,) for batch in self.inputs_for(images, Stream.LIVE_DEGRADE)]


class Inpaint(Restoration, task="inpaint"):
    def degrade(self, images: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        n, _, h, w = images.shape
        mask = deg.masks(n, h, w, tuple(self.params.restore.inpaint.coverage), rng)
        hidden = self.facts.encode(images, mask.to(images.device, images.dtype))
        return hidden, hidden

    def preview(self, inputs: torch.Tensor, channels: int) -> torch.Tensor:
        return inputs[:, :-1]  # the holes are mid-grey


class SuperRes(Restoration, task="superres"):
    def __init__(self, params: Params, *args) -> None:
        super().__init__(params, *args)
        self.scale = params.restore.superres.factor

    def degrade(self, images: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        s = self.params.restore.superres
        low = deg.downscale(images, s.factor, rng, blur=s.blur, noise=s.noise, jpeg_quality=s.jpeg_quality)
        return low, F.interpolate(low, scale_factor=s.factor, mode="bicubic", align_corners=False)

    def preview(self, inputs: torch.Tensor, channels: int) -> torch.Tensor:
        return F.interpolate(inputs, scale_factor=self.scale, mode="nearest")  # the pixels as they are


class Colorize(Restoration, task="colorize"):
    def degrade(self, images: torch.Tensor, rng: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        luma = self.facts.encode(images)
        return luma, luma

    def preview(self, inputs: torch.Tensor, channels: int) -> torch.Tensor:
        return inputs.expand(-1, channels, -1, -1)

    # Colour measures, which see colour where the domain evaluator may not.
    def own_scores(self, restored: torch.Tensor, targets: torch.Tensor) -> dict[str, np.ndarray]:
        return {
            "colourfulness": rm.colourfulness(restored),
            "chroma_error": rm.chroma_error(restored, targets),
        }

    def own_report(self, restored: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
        return {"colour_js": rm.colour_histogram_distance(restored, targets)}

    def own_references(self, targets: list[torch.Tensor], tiles: torch.Tensor) -> tuple[dict, dict[str, str]]:
        half = len(tiles) // 2
        references = {
            "colourfulness_real": rm.summarize({"c": torch.cat([rm.colourfulness(t) for t in targets])})["c"],
            "colour_js_real": rm.colour_histogram_distance(tiles[half:], tiles[:half]),
        }
        conventions = {
            "colourfulness": "Hasler-Suesstrunk colourfulness of each output, 0..255 units (grey 0); "
            "colourfulness_real: of the real images (what a perfect colorizer gets)",
            "chroma_error": "mean |(Cb, Cr) - the real image's| per output, 0..255 units (a perfect colorizer: 0)",
            "colour_js": "Jensen-Shannon distance (bits) of the (Cb, Cr) histograms of the outputs and the "
            "originals (their tiles); colour_js_real: the first half of the originals' tiles against the "
            "second half (depends on how alike the scenes are: few photos make it large)",
        }
        return references, conventions
