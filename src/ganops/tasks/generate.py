"""generate: noise in, image out (the sampling GAN). G(z) or G(z, y); D(x) or D(x, y)."""

from __future__ import annotations

import math

import numpy as np
import torch

from ganops import cards
from ganops.config import Params, TrainParams
from ganops.errors import ConfigError
from ganops.models import ArchSpec
from ganops.models.layers import labels_for
from ganops.runtime import Stream, stream
from ganops.tasks import TASKS, Pair


@TASKS.register("generate")
class Generate:
    card = cards.card("generate")
    name = card.name
    shaping: dict[str, str] = {}

    def __init__(self, params: Params, device: torch.device, noise: torch.Generator, evaluator=None) -> None:
        self.params, self.device, self.noise = params, device, noise
        self.latent_dim = params.model.latent_dim
        z = torch.randn(params.train.grid_size, self.latent_dim, generator=stream(params.seed, Stream.GRID_Z))
        self.grid_z = z.to(device)

    def arch_spec(self, images: np.ndarray, labels: np.ndarray | None) -> ArchSpec:
        m = self.params.model
        num_classes = 0
        if m.conditional:
            if labels is None:
                raise ConfigError(
                    f"model.conditional: the prepared data ({self.params.data.source}) has no labels; "
                    "set model.conditional to false or use a labelled source (or class sub-folders)"
                )
            num_classes = int(labels.max()) + 1
        return ArchSpec(
            arch=m.arch,
            latent_dim=m.latent_dim,
            image_size=images.shape[-1],
            channels=images.shape[1],
            g_width=m.g_width,
            d_width=m.d_width,
            num_classes=num_classes,
            spectral_norm=m.spectral_norm,
            d_dropout=m.d_dropout,
        )

    def pair(self, real: torch.Tensor, y_real: torch.Tensor | None, batch: int, G: torch.nn.Module) -> Pair:
        batch_size = self.params.train.batch_size
        z = torch.randn(batch_size, self.latent_dim, generator=self.noise).to(self.device)
        y_fake = labels_for(G, z)
        return Pair(inputs=(z, y_fake), real=real, y_real=y_real, y_fake=y_fake)

    def image_budget(self, train: TrainParams) -> tuple[int | None, str]:
        return train.images, "train.images"

    def g_terms(self, fake: torch.Tensor, real: torch.Tensor) -> dict[str, torch.Tensor]:
        return {}

    def warmup_steps(self, train: TrainParams) -> int:
        return 0  # nothing but the adversarial term to learn from

    def grid(self, G: torch.nn.Module, images: np.ndarray) -> tuple[torch.Tensor, int]:
        return G(self.grid_z).float(), int(math.sqrt(len(self.grid_z)))

    def live_inputs(self, images: np.ndarray) -> list[tuple]:
        z = torch.randn(len(images), self.latent_dim, generator=stream(self.params.seed, Stream.LIVE_Z))
        return [(chunk,) for chunk in z.split(500)]
