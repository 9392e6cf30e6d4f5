"""Generator/discriminator architectures, looked up by name (``model.arch``).

An architecture is a class with ``generator(spec)`` and ``discriminator(spec)`` builders and
the image sizes it supports. ``ArchSpec`` is everything needed to rebuild a network; it is
saved next to the weights in models/generator.pt (fields added later have defaults, so older
files still load).

Every generator is called as ``G(z)`` or ``G(z, y)`` and every discriminator as ``D(x)`` or
``D(x, y)``; unconditional networks ignore ``y``. A class-conditional generator called without
labels draws them from ``z`` itself (``LatentClasses``), so ``G(z)`` stays a complete sampler
that ONNX export and serving use unchanged.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

from torch import nn

from ganops import catalog
from ganops.cards import card
from ganops.errors import ConfigError
from ganops.plugins import Registry


@dataclass(frozen=True, kw_only=True)
class ArchSpec:
    arch: str
    latent_dim: int
    image_size: int
    channels: int
    g_width: int
    d_width: int
    num_classes: int = 0  # > 0: class-conditional (label embedding in G, projection in D)
    spectral_norm: bool = False  # spectral normalization of D's layers (then D has no batch norm)
    d_dropout: float = 0.0  # dropout after each hidden activation of D
    # Restoration tasks only (image to image, models.unet); a sampling generator keeps the defaults.
    task: str = "generate"
    scale: int = 1  # output size / input size (superres factor)
    depth: int = 0  # U-Net levels: the input's height and width times scale are a multiple of 2**depth
    patch_depth: int = 0  # PatchGAN's stride-2 levels
    dilated: int = 0  # dilated residual blocks at the U-Net's bottleneck (dilations 1, 2, 4, ...)

    def to_dict(self) -> dict:
        """The fields that rebuild the network. A sampling generator's dict leaves out the restoration
        fields, so its generator.pt and export sidecar stay the bytes they were before those fields."""
        fields = asdict(self)
        if card(self.task).image_to_image is None:
            for name in RESTORATION_FIELDS:
                fields.pop(name)
        return fields

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0


RESTORATION_FIELDS = ("task", "scale", "depth", "patch_depth", "dilated")


class Architecture(Protocol):
    conditional: bool  # whether a class-conditional variant exists

    def supports(self, image_size: int) -> bool: ...
    def sizes(self) -> str: ...
    def generator(self, spec: ArchSpec) -> nn.Module: ...
    def discriminator(self, spec: ArchSpec) -> nn.Module: ...


ARCHITECTURES: Registry[type[Architecture]] = Registry(catalog.ARCHITECTURES)


class ConvArchitecture:
    """A convolutional G/D pair for any size from 16 to 256 (layers.size_ladder), with a conditional variant."""

    SMALLEST, LARGEST = 16, 256
    conditional = True
    generator_class: type[nn.Module]
    discriminator_class: type[nn.Module]

    def supports(self, image_size: int) -> bool:
        return self.SMALLEST <= image_size <= self.LARGEST

    def sizes(self) -> str:
        return f"{self.SMALLEST} to {self.LARGEST}"

    def generator(self, spec: ArchSpec) -> nn.Module:
        return self.generator_class(spec)

    def discriminator(self, spec: ArchSpec) -> nn.Module:
        return self.discriminator_class(spec)


def _arch(spec: ArchSpec) -> Architecture:
    arch = ARCHITECTURES.get(spec.arch)()
    if not arch.supports(spec.image_size):
        raise ConfigError(
            f"model.arch: {spec.arch} cannot build {spec.image_size}x{spec.image_size} images; "
            f"it supports {arch.sizes()} (set data.image_size)"
        )
    if spec.conditional and not arch.conditional:
        conditional = [name for name in ARCHITECTURES.names() if ARCHITECTURES.get(name).conditional]
        raise ConfigError(
            f"model.conditional: {spec.arch} has no class-conditional variant; "
            f"use one of {', '.join(conditional)} or set model.conditional to false"
        )
    return arch


def build_generator(spec: ArchSpec) -> nn.Module:
    return _arch(spec).generator(spec)


def build_discriminator(spec: ArchSpec) -> nn.Module:
    return _arch(spec).discriminator(spec)


def conditional_architectures() -> list[str]:
    return [name for name in ARCHITECTURES.names() if ARCHITECTURES.get(name).conditional]


# Registration happens on import of the modules below.
from ganops.models import dcgan, mlp, resnet, unet  # noqa: E402,F401
