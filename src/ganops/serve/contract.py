"""What a restoration model expects and returns, read from the ``ganops.*`` metadata that export wrote
(export/signature.py's ``restoration_contract``), and the limits put on one request. The server and
``ganops restore`` follow only these, never the training config, so a registered file is enough to
serve it. Light on purpose: the CLI reads the limits' defaults for its --help.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from ganops.cards import ImageToImage, image_tasks, image_to_image
from ganops.errors import ServeError

log = logging.getLogger(__name__)
TRAINED_ON = "ganops.trained_on."  # export/signature.py's trained_on, one metadata key per fact
UNKNOWN = (
    "unknown: this model was exported before ganops recorded its training data; "
    "re-export it with `ganops export` to see it here"
)


@dataclass(frozen=True)
class RestoreLimits:
    max_pixels: int = 4 * 2**20  # input pixels (2048 x 2048); superres writes scale**2 times more
    tile_size: int = 256  # superres inputs with a side over this are cut into tiles this wide (input px)
    tile_overlap: int = 32  # input pixels shared by neighbouring tiles, where their outputs are blended
    batch: int = 8  # images or tiles per model run (the micro-batcher merges same-size ones up to this)

    def __post_init__(self) -> None:
        if not 0 <= self.tile_overlap < self.tile_size:
            raise ServeError(
                f"--tile-overlap {self.tile_overlap}: must be at least 0 and below --tile-size {self.tile_size}; "
                "lower it (an eighth of the tile is usual) or raise --tile-size"
            )


@dataclass(frozen=True)
class TrainedOn:
    """What a restoration model learned from: prepare's manifest, as export recorded it."""

    source: str  # the data source's name (fashion-mnist, imagefolder, ...)
    origin: str  # where its files were read
    channels: int  # 1: grey, 3: RGB
    image_size: int  # the training images' (or patches') side, in output pixels
    crop: str  # resize (whole images, shorter side, centre crop) | random_patches
    patches_per_image: int | None = None  # random_patches only
    pairs: str | None = None  # paired data only (translate): how pairs were found ...
    direction: str | None = None  # ... and which of a pair was the input

    def summary(self) -> str:
        """One line for people: "imagefolder (data/raw/photos), RGB, 96 px random patches (16 per image)"."""
        colour = "grey" if self.channels == 1 else "RGB"
        if self.crop == "random_patches":
            size = f"{self.image_size} px random patches ({self.patches_per_image} per image)"
        else:
            size = f"{self.image_size} px images"  # whole images fitted to the size
        pairs = f", pairs: {self.pairs} {self.direction}" if self.pairs else ""
        return f"{self.source} ({self.origin}), {colour}, {size}{pairs}"


def trained_on(meta: dict[str, str], origin: str) -> TrainedOn | None:
    """The training data's facts from the metadata, or None for a model exported before export recorded
    them (or with them damaged: they only inform, so serving goes on and /readyz says unknown)."""
    facts = {key.removeprefix(TRAINED_ON): value for key, value in meta.items() if key.startswith(TRAINED_ON)}
    if not facts:
        return None
    try:
        patches = facts.get("patches_per_image")
        return TrainedOn(
            source=facts["source"],
            origin=facts["origin"],
            channels=int(facts["channels"]),
            image_size=int(facts["image_size"]),
            crop=facts.get("crop", "resize"),
            patches_per_image=None if patches is None else int(patches),
            pairs=facts.get("pairs"),
            direction=facts.get("direction"),
        )
    except (KeyError, ValueError) as err:
        log.warning("%s: ganops.trained_on.* is incomplete (%r); /readyz says unknown", origin, err)
        return None


def trained_on_json(trained: TrainedOn | None) -> dict:
    """/readyz's ``trained_on``: the summary line first, then each fact; only the summary when unknown."""
    if trained is None:
        return {"summary": UNKNOWN}
    facts = {key: value for key, value in asdict(trained).items() if value is not None}
    return {"summary": trained.summary(), **facts}


@dataclass(frozen=True)
class RestorationInfo:
    task: str  # an image-to-image task (ganops.cards)
    input_name: str
    output_name: str
    input_channels: int  # inpaint: image channels + the mask; colorize: 1 (luminance)
    output_channels: int
    size_multiple: int  # the input's height and width must be multiples of this
    scale: int  # output size / input size
    trained_size: tuple[int, int]  # of the output
    input_dtype: str  # "float32", or "float16" for a model exported without keep_io_types
    mask_hole_value: float = 1.0  # inpaint: the mask channel's value inside a hole
    masked_pixel_value: float = 0.0  # inpaint: the image channels' value inside a hole
    trained_on: TrainedOn | None = None  # None: exported before export recorded it

    @property
    def facts(self) -> ImageToImage:
        """The task's card: how an upload becomes the model's input, its baseline, route and fields."""
        return image_to_image(self.task)

    @property
    def trained_input_side(self) -> int:
        return max(self.size_multiple, self.trained_size[0] // self.scale)


def restoration_info(meta: dict[str, str], input_dtype: str, origin: str) -> RestorationInfo:
    """The contract of a restoration graph from its metadata_props; ServeError naming the key otherwise."""
    task = meta.get("ganops.task")
    if task not in image_tasks():
        raise ServeError(
            f"{origin}: ganops.task is {task!r}, not one of {', '.join(image_tasks())} or generate; "
            "serve a file written by `ganops export`"
        )
    try:
        info = RestorationInfo(
            task=task,
            input_name=meta["ganops.input"],
            output_name=meta["ganops.output"],
            input_channels=int(meta["ganops.input_channels"]),
            output_channels=int(meta["ganops.output_channels"]),
            size_multiple=int(meta["ganops.size_multiple"]),
            scale=int(meta["ganops.scale"]),
            trained_size=tuple(int(v) for v in meta["ganops.trained_size"].split(",")),
            input_dtype=input_dtype,
            mask_hole_value=float(meta.get("ganops.mask_hole_value", 1)),
            masked_pixel_value=float(meta.get("ganops.masked_pixel_value", 0)),
            trained_on=trained_on(meta, origin),
        )
    except (KeyError, ValueError) as err:
        raise ServeError(
            f"{origin}: the {task} model's ganops metadata is incomplete ({err!r}); "
            "re-export it with `ganops export`"
        ) from None
    if meta.get("ganops.value_range", "-1,1") != "-1,1" or info.size_multiple < 1 or info.scale < 1:
        raise ServeError(f"{origin}: unsupported {task} contract {meta}; re-export it with `ganops export`")
    return info
