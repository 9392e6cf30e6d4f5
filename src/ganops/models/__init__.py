"""Generator/discriminator architectures, looked up by name (``model.arch``).

An architecture is a class with ``generator(spec)`` and ``discriminator(spec)`` builders and
the image sizes it supports. ``ArchSpec`` is everything needed to rebuild a network; it is
saved next to the weights in models/generator.pt.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol

from torch import nn

from ganops.errors import ConfigError
from ganops.plugins import Registry


@dataclass(frozen=True)
class ArchSpec:
    arch: str
    latent_dim: int
    image_size: int
    channels: int
    g_width: int
    d_width: int

    def to_dict(self) -> dict:
        return asdict(self)


class Architecture(Protocol):
    def supports(self, image_size: int) -> bool: ...
    def sizes(self) -> str: ...
    def generator(self, spec: ArchSpec) -> nn.Module: ...
    def discriminator(self, spec: ArchSpec) -> nn.Module: ...


ARCHITECTURES: Registry[type[Architecture]] = Registry("architecture")


def _arch(spec: ArchSpec) -> Architecture:
    arch = ARCHITECTURES.get(spec.arch)()
    if not arch.supports(spec.image_size):
        raise ConfigError(
            f"model.arch: {spec.arch} cannot build {spec.image_size}x{spec.image_size} images; "
            f"it supports {arch.sizes()} (set data.image_size)"
        )
    return arch


def build_generator(spec: ArchSpec) -> nn.Module:
    return _arch(spec).generator(spec)


def build_discriminator(spec: ArchSpec) -> nn.Module:
    return _arch(spec).discriminator(spec)


# Registration happens on import of the modules below.
from ganops.models import dcgan, mlp  # noqa: E402,F401
