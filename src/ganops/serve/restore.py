"""One restoration, from uploaded file bytes to PNG bytes: the code path of both ``POST /v1/<route>``
and ``ganops restore``, so the two give the same bytes for the same input.

    decode (data/images.py: EXIF orientation, alpha, palette, 16-bit; pixels counted before decoding)
    -> the model's input in [-1, 1], encoded by the task's card (inpaint: the hole blanked + the mask;
       colorize: the luminance)
    -> reflect-pad height and width to the model's size_multiple
    -> tiles (where the card says tiles are valid, when a side is over tile_size; otherwise one tile)
    -> the model -> tiles blended, the padding cropped (times scale) -> PNG
    (+ a warning when the upload's colour does not fit what the model learned: ``fit_warning``)

The model runs between ``prepare`` and ``finish``: the server queues ``Plan.batches`` on its
micro-batcher, the CLI hands them to the session (``restore_upload``).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ganops.data.images import TooLarge, convert_channels, open_checked, to_rgb
from ganops.serve.contract import RestorationInfo, RestoreLimits
from ganops.serve.images import png_bytes, to_uint8
from ganops.telea import OpenCVMissing

ACCEPTED_FORMATS = ("PNG", "JPEG")
BLACK = (0, 0, 0)  # a mask's transparent parts are no hole
WHITE = (255, 255, 255)  # an image's transparent parts, as a viewer shows them


class BadInput(ValueError):
    """An upload the model cannot take; the message starts with the field and says what to send."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Tile:
    y: int  # top-left corner in the padded input
    x: int
    weight: np.ndarray  # (h * scale, w * scale) blending weight of its output


@dataclass
class Plan:
    """The model inputs of one request and how their outputs become the answer."""

    batches: list[np.ndarray]  # (n, C_in, h, w) float32 each, to run in order
    tiles: list[Tile] = field(default_factory=list)  # one per row of the batches, in order
    size: tuple[int, int] = (0, 0)  # the input's height and width (the output is scale times that)
    padded: tuple[int, int] = (0, 0)
    scale: int = 1
    channels: int = 3  # of the output
    passthrough: np.ndarray | None = None  # (H, W, C) uint8: the answer without the model
    warning: str | None = None  # why the answer may not look like the upload (fit_warning)


def decode(data: bytes, field: str, max_pixels: int, background: tuple[int, int, int]) -> np.ndarray:
    """A PNG or JPEG file -> (H, W, 3) uint8 RGB, as data/images.py decodes training images."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open_checked(io.BytesIO(data), max_pixels, ACCEPTED_FORMATS) as image:
            image.load()
            return np.asarray(to_rgb(image, background), dtype=np.uint8)
    except (TooLarge, Image.DecompressionBombError) as err:
        raise BadInput(
            field, f"{err}; send a smaller image (this server takes {max_pixels:,} pixels)"
        ) from None
    except UnidentifiedImageError:
        raise BadInput(field, f"not a PNG or JPEG file ({len(data):,} bytes); send one of those") from None
    except (OSError, SyntaxError, ValueError) as err:
        raise BadInput(
            field, f"cannot be decoded ({err}): truncated or corrupt; send the whole file"
        ) from None


def to_unit(pixels: np.ndarray) -> np.ndarray:
    """(H, W, C) uint8 -> (C, H, W) float32 in [-1, 1], as data/prepared.py maps training images."""
    return pixels.transpose(2, 0, 1).astype(np.float32) / np.float32(127.5) - np.float32(1.0)


def model_pixels(rgb: np.ndarray, channels: int) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W, channels): grey models get BT.601 luma, rounded as prepare rounds it."""
    return convert_channels(rgb.transpose(2, 0, 1)[None], channels)[0].transpose(1, 2, 0)


def model_input(
    info: RestorationInfo, rgb: np.ndarray, hole: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """(C_in, H, W) float32 model input, as the task's card encodes the upload in training too, and the
    (H, W, C) uint8 picture the user would see unchanged."""
    pixels = model_pixels(rgb, info.output_channels)
    hole = None if hole is None else hole[None, None].astype(np.float32)
    return info.facts.encode(to_unit(pixels)[None], hole)[0], pixels


def is_colour(rgb: np.ndarray) -> bool:
    """Whether an (H, W, 3) upload has colour: its channels differ somewhere (a grey file decodes to R == G == B)."""
    return not (np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 1], rgb[..., 2]))


def fit_warning(info: RestorationInfo, rgb: np.ndarray) -> str | None:
    """Why the answer will not look like the upload when its colour does not fit the model's training
    data, with the fix; None when it fits. The server sends it as X-Ganops-Warning, the CLI prints it."""
    facts = info.facts
    if facts.learns_colour:  # its input is any upload's luminance, by design (colorize)
        return None
    colour = is_colour(rgb)
    data = f" ({info.trained_on.source})" if info.trained_on else ""
    if colour and info.output_channels == 1:
        return (
            f"this model was trained on one-channel grey images{data}: the colour upload was converted to "
            "grey and the answer is grey; for colour, serve a model trained on colour photos "
            "(data.source=imagefolder on a folder of photos; `ganops preset` lists the photo presets)"
        )
    # A paired model's input domain is not its output's (grey edges to colour photos): grey may be right.
    if not colour and info.output_channels == 3 and not facts.learns_from_pairs:
        return (
            f"this model was trained on colour images{data}: the grey upload was given to it as three equal "
            "channels, so the answer may show colour the image lacks; send the colour original, or serve "
            "a model trained on grey images (data.channels: 1)"
        )
    return None


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Starts of tiles ``tile`` long covering [0, length): ``tile - overlap`` apart, the last one flush
    with the end (so it may overlap more). Every start is a multiple of size_multiple when ``length``,
    ``tile`` and ``overlap`` are, which keeps each tile on the untiled image's downsampling grid."""
    if length <= tile:
        return [0]
    return [*range(0, length - tile, tile - overlap), length - tile]


def feather(length: int, overlap: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
    """1-D blending weight of one tile's output (``overlap`` in output pixels): 0 over the outer quarter
    of an overlap, where the tile's own border still shows, rising linearly to 1 at three quarters.
    Sides on the image's border keep weight 1."""
    weight = np.ones(length, np.float32)
    if overlap == 0:  # tiles that only touch: nothing to blend
        return weight
    distance = np.arange(length, dtype=np.float32) + 0.5  # from the tile's start, to pixel centres
    ramp = np.clip((distance - overlap / 4) / (overlap / 2), 0.0, 1.0)
    if ramp_start:
        weight = np.minimum(weight, ramp)
    if ramp_end:
        weight = np.minimum(weight, ramp[::-1])
    return weight


def _tile_side(limits: RestoreLimits, multiple: int, tiled: bool, side: int) -> tuple[int, int]:
    """(tile, overlap) along an axis of ``side`` padded input pixels, both multiples of ``multiple``."""
    if not tiled:
        return side, 0
    tile = max(2 * multiple, limits.tile_size // multiple * multiple)
    overlap = min(tile - multiple, -(-limits.tile_overlap // multiple) * multiple)
    return min(tile, side), overlap


def _tiles(info: RestorationInfo, limits: RestoreLimits, padded: np.ndarray) -> tuple[list[Tile], int, int]:
    tiled = info.facts.tiled
    (_, height, width), s = padded.shape, info.scale
    th, oy = _tile_side(limits, info.size_multiple, tiled, height)
    tw, ox = _tile_side(limits, info.size_multiple, tiled, width)
    tiles = []
    for y in tile_starts(height, th, oy):
        wy = feather(th * s, oy * s, y > 0, y + th < height)
        for x in tile_starts(width, tw, ox):
            wx = feather(tw * s, ox * s, x > 0, x + tw < width)
            tiles.append(Tile(y, x, wy[:, None] * wx[None, :]))
    return tiles, th, tw


def decode_upload(
    info: RestorationInfo, limits: RestoreLimits, image: bytes, mask: bytes | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """The upload checked against the model's contract: (H, W, 3) uint8 RGB and, for inpainting, the
    (H, W) bool holes; BadInput names the field."""
    rgb = decode(image, "image", limits.max_pixels, WHITE)
    height, width = rgb.shape[:2]
    hole = None
    if "mask" in info.facts.fields:
        if mask is None:
            raise BadInput(
                "mask", "missing; send a PNG of the image's size whose non-zero pixels mark the hole"
            )
        hole = decode(mask, "mask", limits.max_pixels, BLACK).any(axis=2)
        if hole.shape != (height, width):
            raise BadInput(
                "mask",
                f"{hole.shape[1]}x{hole.shape[0]} pixels, the image is {width}x{height}; "
                "send a mask of the image's size",
            )
    elif mask is not None:
        raise BadInput("mask", f"a {info.task} model takes no mask; leave it out")
    return rgb, hole


def prepare(info: RestorationInfo, limits: RestoreLimits, image: bytes, mask: bytes | None = None) -> Plan:
    """Decode and check the upload(s) and cut the model's input batches; BadInput names the field."""
    rgb, hole = decode_upload(info, limits, image, mask)
    height, width = rgb.shape[:2]
    x, seen = model_input(info, rgb, hole)
    plan = Plan([], size=(height, width), scale=info.scale, channels=info.output_channels)
    plan.warning = fit_warning(info, rgb)
    if hole is not None and not hole.any():  # nothing to fill: the input is the answer
        plan.passthrough = seen
        return plan
    m = info.size_multiple
    padded = np.pad(x, ((0, 0), (0, -height % m), (0, -width % m)), mode="reflect")
    plan.padded = padded.shape[1:]
    plan.tiles, th, tw = _tiles(info, limits, padded)
    crops = [padded[:, t.y : t.y + th, t.x : t.x + tw] for t in plan.tiles]
    plan.batches = [np.stack(crops[i : i + limits.batch]) for i in range(0, len(crops), limits.batch)]
    return plan


def finish(plan: Plan, outputs: list[np.ndarray]) -> bytes:
    """The model's outputs for ``plan.batches`` -> the PNG answer."""
    if plan.passthrough is not None:
        return png_bytes(plan.passthrough)
    return png_bytes(to_uint8(assemble(plan, outputs)[None])[0])


def assemble(plan: Plan, outputs: list[np.ndarray]) -> np.ndarray:
    """The model's outputs for ``plan.batches`` -> (C, H * scale, W * scale) float32: tiles blended,
    padding cropped. One tile (weight 1) gives the model's output bit for bit."""
    s = plan.scale
    total = np.zeros((plan.channels, plan.padded[0] * s, plan.padded[1] * s), np.float32)
    weights = np.zeros(total.shape[1:], np.float32)
    rows = (row for batch in outputs for row in batch)
    for tile, out in zip(plan.tiles, rows, strict=True):
        h, w = tile.weight.shape
        total[:, tile.y * s : tile.y * s + h, tile.x * s : tile.x * s + w] += out * tile.weight
        weights[tile.y * s : tile.y * s + h, tile.x * s : tile.x * s + w] += tile.weight
    height, width = plan.size
    return (total / weights)[:, : height * s, : width * s]


class BaselineUnavailable(RuntimeError):
    """The classical method needs a library this installation lacks; the message says which."""


def baseline_bytes(
    info: RestorationInfo, limits: RestoreLimits, image: bytes, mask: bytes | None = None
) -> bytes:
    """PNG bytes of the task's classical method on the upload, at the model's output size and channels:
    the card's function on the model's input, which the evaluate stage scores too."""
    rgb, hole = decode_upload(info, limits, image, mask)
    x, _ = model_input(info, rgb, hole)
    try:
        return png_bytes(to_uint8(info.facts.baseline.run(x[None], info.output_channels, info.scale))[0])
    except OpenCVMissing as err:
        raise BaselineUnavailable(f"{err}, where the server runs") from None


def restore_upload(
    run: Callable[[np.ndarray], np.ndarray],
    info: RestorationInfo,
    limits: RestoreLimits,
    image: bytes,
    mask: bytes | None = None,
) -> tuple[bytes, str | None]:
    """PNG bytes of the restored image, running the model with ``run`` (``GeneratorSession.run``), and
    the upload's fit warning (None when it fits)."""
    plan = prepare(info, limits, image, mask)
    return finish(plan, [run(batch) for batch in plan.batches]), plan.warning
