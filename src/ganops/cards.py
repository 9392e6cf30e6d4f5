"""One card per task: every fact about a task that more than one layer reads, in one place.

The networks' heads (models/unet.py), export and its ONNX contract (export/signature.py), the
server (serve/), the CLI, the params validator and scoring read a task's facts from its card; none
of them branches on a task's name or keeps a table keyed by it. A card leaves no fact out: every
field is required, so a card missing one fails at import with the field named.

Light on purpose (no torch, no NumPy at import): the server and ``ganops validate`` read it.
Adding a task is its card here, its file in tasks/ (how it degrades or pairs its data, in torch),
its params section and, for a new kind of output, its head in models/unet.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ganops import baselines, colour
from ganops.errors import ConfigError

# (inputs, channels, scale) -> outputs, over NumPy arrays: see ganops.baselines.
BaselineFn = Callable[[Any, int, int], Any]


@dataclass(frozen=True, kw_only=True)
class Primary:
    """The metric the registry gates on, and its direction."""

    metric: str
    higher_is_better: bool


@dataclass(frozen=True, kw_only=True)
class Baseline:
    """The classical method a user has without a GAN: scored beside the model by the evaluate stage,
    served at ``<route>/baseline``, by the one function ``run``."""

    name: str  # in reports: metrics.json's baseline.method
    title: str  # on pages and in the API's documentation
    run: BaselineFn


@dataclass(frozen=True, kw_only=True)
class Mask:
    """An input that carries a mask as its last channel (the hole to fill)."""

    hole_value: float  # the mask's value inside a hole (0 elsewhere)
    masked_pixel_value: float  # the image channels' value inside a hole


@dataclass(frozen=True, kw_only=True)
class ImageToImage:
    """The facts of a task whose model maps an image to an image (a U-Net with a head)."""

    head: str  # models/unet.py's head of this name turns the U-Net into the task's generator
    input_channels: Callable[[int], int]  # of the model's input, given the image's channels
    # The user's image (and hole, when ``mask``) -> the model's input: one function over NumPy or torch
    # (float NCHW in [-1, 1]), called by training, the evaluation set, export's checks and the server.
    encode: Callable[..., Any]
    mask: Mask | None
    scaled: bool  # the output is restore.superres.factor times the input's size
    tiled: bool  # tiles with context give the whole image's pixels, so large inputs may be cut
    learns_colour: bool  # the prepared images must have colour
    learns_from_pairs: bool  # reads paired data when given (data.pairs), the input of each pair given
    baseline: Baseline
    route: str  # POST route of the server
    fields: tuple[str, ...]  # upload fields of the route, in order
    contract: dict[str, str]  # further ganops.* metadata a client needs (value conventions)

    def __post_init__(self) -> None:
        if not self.route.startswith("/v1/"):
            raise ValueError(f"route {self.route!r}: routes live under /v1/")
        if self.fields[:1] != ("image",) or ("mask" in self.fields) != (self.mask is not None):
            raise ValueError(
                f"fields {self.fields}: 'image' first, and 'mask' exactly when the input has a mask"
            )


@dataclass(frozen=True, kw_only=True)
class TaskCard:
    name: str
    summary: str  # what the task does, as the API documents its route
    input_name: str  # the exported graph's input
    model_name: str | None  # registered model; None: register.model_name
    primary: Primary
    image_to_image: ImageToImage | None  # None: noise in (the sampling GAN)


def _channels(*parts: Any) -> Any:
    """Arrays or tensors stacked along the channel axis (NCHW), whichever they are."""
    if hasattr(parts[0], "dim"):  # torch
        import torch

        return torch.cat(parts, dim=1)
    import numpy as np

    return np.concatenate(parts, axis=1)


def _unchanged(images: Any, hole: Any = None) -> Any:
    return images


def _blank_the_hole(images: Any, hole: Any) -> Any:
    """The image with the hole set to 0 (mid-grey), and the hole (1) as its last channel."""
    return _channels(images * (1 - hole), hole)


def _luminance(images: Any, hole: Any = None) -> Any:
    return colour.luminance(images)


FID = Primary(metric="fid_domain", higher_is_better=False)
_LUMA = " + ".join(f"{w} {c}" for w, c in zip(colour.LUMA_WEIGHTS, "RGB", strict=True))

CARDS: dict[str, TaskCard] = {
    card.name: card
    for card in (
        TaskCard(
            name="generate",
            summary="Sample images from noise.",
            input_name="z",
            model_name=None,
            primary=FID,
            image_to_image=None,
        ),
        TaskCard(
            name="inpaint",
            summary="Fill the holes of `image` marked by `mask` (non-zero pixels); the rest is kept.",
            input_name="masked_image",
            model_name="ganops-inpaint",
            primary=FID,
            image_to_image=ImageToImage(
                head="fill",
                input_channels=lambda c: c + 1,
                encode=_blank_the_hole,
                mask=Mask(hole_value=1.0, masked_pixel_value=0.0),
                scaled=False,
                tiled=False,  # a large hole needs the whole picture
                learns_colour=False,
                learns_from_pairs=False,
                baseline=Baseline(name="opencv_telea", title="OpenCV Telea", run=baselines.telea),
                route="/v1/inpaint",
                fields=("image", "mask"),
                contract={},
            ),
        ),
        TaskCard(
            name="superres",
            summary="Upscale `image` by the model's scale (large images are tiled with overlap and blended).",
            input_name="low_res_image",
            model_name="ganops-superres",
            primary=Primary(metric="psnr_y", higher_is_better=True),
            image_to_image=ImageToImage(
                head="upscale",
                input_channels=lambda c: c,
                encode=_unchanged,  # the user's image is the low-resolution input
                mask=None,
                scaled=True,
                tiled=True,  # super-resolution is local
                learns_colour=False,
                learns_from_pairs=False,
                baseline=Baseline(name="bicubic", title="bicubic", run=baselines.bicubic),
                route="/v1/upscale",
                fields=("image",),
                contract={},
            ),
        ),
        TaskCard(
            name="colorize",
            summary="Colour `image`; a colour upload is reduced to its luminance first, which the output keeps.",
            input_name="luminance",
            model_name="ganops-colorize",
            primary=FID,
            image_to_image=ImageToImage(
                head="chroma",
                input_channels=lambda c: 1,
                encode=_luminance,
                mask=None,
                scaled=False,
                tiled=False,  # colour depends on the whole scene
                learns_colour=True,
                learns_from_pairs=False,
                baseline=Baseline(name="grey", title="grey", run=baselines.grey),
                route="/v1/colorize",
                fields=("image",),
                contract={
                    "input_colour": f"luminance Y = {_LUMA} (full-range BT.601) of RGB in [-1, 1]",
                    "output_colour": "RGB",
                },
            ),
        ),
        TaskCard(
            name="translate",
            summary="Translate `image` into the other domain of the pairs the model learned (edges to photo, ...).",
            input_name="image_a",
            model_name="ganops-translate",
            primary=FID,
            image_to_image=ImageToImage(
                head="direct",
                input_channels=lambda c: c,
                encode=_unchanged,  # the user's image is the input domain's
                mask=None,
                scaled=False,
                tiled=False,  # the U-Net sees the whole input, as in training
                learns_colour=False,
                learns_from_pairs=True,
                baseline=Baseline(name="identity", title="identity", run=baselines.identity),
                route="/v1/translate",
                fields=("image",),
                contract={},
            ),
        ),
    )
}


def card(task: str) -> TaskCard:
    """The card of ``task``; ConfigError listing the tasks otherwise."""
    try:
        return CARDS[task]
    except KeyError:
        raise ConfigError(f"unknown task {task!r}; valid: {', '.join(sorted(CARDS))}") from None


def image_to_image(task: str) -> ImageToImage:
    """The image-to-image facts of ``task``; ConfigError when it samples from noise."""
    facts = card(task).image_to_image
    if facts is None:
        raise ConfigError(
            f"task {task} samples from noise; the image-to-image tasks are {', '.join(image_tasks())}"
        )
    return facts


def registered_model(task: str, default: str) -> str:
    """The registered model of ``task``: its card's (one per image-to-image task, so versions of
    different tasks are never compared), or ``default`` (register.model_name) for sampling."""
    return card(task).model_name or default


def image_tasks() -> tuple[str, ...]:
    """The tasks whose model maps an image to an image."""
    return tuple(name for name, c in CARDS.items() if c.image_to_image)
