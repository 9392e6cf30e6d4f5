"""What a restoration model expects and returns, read from the ``ganops.*`` metadata that export wrote
(export/signature.py's ``restoration_contract``), and the limits put on one request. The server and
``ganops restore`` follow only these, never the training config, so a registered file is enough to
serve it. Light on purpose: the CLI reads the limits' defaults for its --help.
"""

from __future__ import annotations

from dataclasses import dataclass

from ganops.cards import ImageToImage, image_tasks, image_to_image
from ganops.errors import ServeError


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
        )
    except (KeyError, ValueError) as err:
        raise ServeError(
            f"{origin}: the {task} model's ganops metadata is incomplete ({err!r}); "
            "re-export it with `ganops export`"
        ) from None
    if meta.get("ganops.value_range", "-1,1") != "-1,1" or info.size_multiple < 1 or info.scale < 1:
        raise ServeError(f"{origin}: unsupported {task} contract {meta}; re-export it with `ganops export`")
    return info
