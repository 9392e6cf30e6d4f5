"""What goes into the exported graph and what comes out, per task: the input's name and dynamic axes,
the inputs parity is checked on, and the pre/post-processing contract a server follows, all read
from the task's card (ganops.cards). Today:

- generate: ``z`` (batch, latent_dim) -> ``images`` (batch, C, size, size);
- inpaint: ``masked_image`` (batch, C+1, height, width): the image with the hole set to 0 (mid-grey)
  in the first C channels, the mask (1 = hole, 0 = known) as the last one -> ``images`` (batch, C, height, width);
- superres: ``low_res_image`` (batch, C, height, width) -> ``images`` (batch, C, height*scale, width*scale);
- colorize: ``luminance`` (batch, 1, height, width): full-range BT.601 Y (ganops.colour) -> ``images``
  (batch, 3, height, width) RGB.

Everything is float32 NCHW in [-1, 1]. A restoration graph takes any height and width that are a
multiple of ``size_multiple`` (the U-Net halves them ``depth`` times): a server pads to it and crops
the output back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ganops.cards import card
from ganops.models import ArchSpec

OUTPUT = "images"


@dataclass(frozen=True)
class Signature:
    """How torch.onnx.export is called: the input's name, an example of it, and its dynamic axes."""

    input: str
    example: torch.Tensor
    dynamic_shapes: tuple[dict[int, object], ...]


def input_name(spec: ArchSpec) -> str:
    return card(spec.task).input_name


def is_restoration(spec: ArchSpec) -> bool:
    """Whether the graph maps an image to an image (rather than noise to an image)."""
    return card(spec.task).image_to_image is not None


def input_channels(spec: ArchSpec) -> int:
    return card(spec.task).image_to_image.input_channels(spec.channels)


def size_multiple(spec: ArchSpec) -> int:
    """What the input's height and width must be a multiple of: the U-Net halves them ``depth`` times
    (at the input's size for every task, super-resolution included)."""
    return 2**spec.depth


def trained_input_size(spec: ArchSpec) -> int:
    return spec.image_size // spec.scale


def input_signature(spec: ArchSpec) -> Signature:
    batch = torch.export.Dim("batch")
    if not is_restoration(spec):
        return Signature(input_name(spec), torch.randn(2, spec.latent_dim), ({0: batch},))
    multiple = size_multiple(spec)
    # A plain Dim does not export: the U-Net's skips need 2 * (h // 2) == h at every level, which
    # torch.export can only prove when the size is declared a multiple.
    if multiple > 1:
        height = torch.export.Dim("height_blocks", min=1) * multiple
        width = torch.export.Dim("width_blocks", min=1) * multiple
    else:
        height, width = torch.export.Dim("height", min=1), torch.export.Dim("width", min=1)
    # Two blocks, not one: torch.export specializes a dimension whose example size is 1.
    side = 2 * multiple
    example = torch.zeros(2, input_channels(spec), side, side)
    return Signature(input_name(spec), example, ({0: batch, 2: height, 3: width},))


def parity_sizes(spec: ArchSpec) -> list[tuple[int, int]]:
    """The input sizes parity is checked at: the training size, and one more multiple in height
    (non-square, and not the traced size: a graph that only worked there fails)."""
    side, multiple = trained_input_size(spec), size_multiple(spec)
    return [(side, side), (side + multiple, side)]


def parity_inputs(spec: ArchSpec, samples: int, rng: torch.Generator) -> list[torch.Tensor]:
    """Random inputs of the right shape and range, one batch per parity size, drawn in order from ``rng``."""
    if not is_restoration(spec):
        return [torch.randn(samples, spec.latent_dim, generator=rng)]
    facts, batches = card(spec.task).image_to_image, []
    for height, width in parity_sizes(spec):
        image = torch.rand(samples, input_channels(spec), height, width, generator=rng) * 2 - 1
        if facts.mask is not None:  # a valid mask: holes of 1, the image blanked under them
            hole = (torch.rand(samples, 1, height, width, generator=rng) < 0.5).float()
            image = facts.encode(image[:, :-1], hole)
        batches.append(image)
    return batches


def batch_label(batch: torch.Tensor) -> str:
    """How the export log names a parity batch: an image batch by its height x width."""
    return f"{batch.shape[-2]}x{batch.shape[-1]}" if batch.dim() == 4 else "z"


def restoration_contract(spec: ArchSpec) -> dict:
    """The pre/post-processing a server needs besides the tensor names, as JSON values (the sidecar's
    keys; the ONNX metadata holds the same under ``ganops.<key>``)."""
    facts = card(spec.task).image_to_image
    contract = {
        "task": spec.task,
        "layout": "NCHW",
        "input_channels": input_channels(spec),
        "output_channels": spec.channels,
        "size_multiple": size_multiple(spec),
        "scale": spec.scale,
        "trained_size": [spec.image_size, spec.image_size],  # of the output
        "value_range": [-1.0, 1.0],
    }
    if facts.mask is not None:
        contract |= {
            "mask_channel": spec.channels,  # 0-based: the last channel
            "mask_hole_value": int(facts.mask.hole_value),  # fill this pixel; 0 = keep it
            "masked_pixel_value": facts.mask.masked_pixel_value,  # the image channels inside the hole
        }
    return contract | facts.contract


# prepare's manifest keys that say what a model learned from; the last three only where they apply.
TRAINED_ON = ("source", "origin", "channels", "image_size", "crop", "patches_per_image", "pairs", "direction")


def trained_on(manifest: dict) -> dict:
    """What the model was trained on, from prepare's manifest (data/prepared/manifest.json): the source,
    where it was read, its channels, the image (or patch) size and how images were fitted to it. The
    server shows it and warns when an upload does not fit (a colour photo to a grey model)."""
    facts = {key: manifest[key] for key in TRAINED_ON if key in manifest}
    facts.setdefault("crop", "resize")  # the manifest names the crop only for random patches
    return facts


def metadata_text(value: object) -> str:
    """A contract value as metadata_props text: lists comma-separated, like ganops.image_shape."""
    if isinstance(value, list):
        return ",".join(metadata_text(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # "-1,1", as the generate task's ganops.value_range
    return str(value)
