"""The names params.yaml may give each pluggable kind, readable without importing torch.

``validate`` checks every name before a stage runs, and it must stay fast (it runs on every
``dvc repro``), so the names live here, in plain tuples. Each registry is created from its entry
(``Registry(catalog.LOSSES)``) and refuses to register a name that is not listed, and
tests/test_config.py checks that every listed name is registered with the traits listed here:
the catalog and the implementations cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

from ganops.cards import CARDS


@dataclass(frozen=True)
class Kind:
    label: str  # how errors name the kind: "unknown loss 'x'"
    names: tuple[str, ...]


SOURCES = Kind("data source", ("celeba", "cifar10", "digits", "fashion-mnist", "imagefolder", "mnist"))
ARCHITECTURES = Kind("architecture", ("dcgan", "mlp", "resnet", "unet"))
LOSSES = Kind(
    "loss", ("hinge", "least_squares", "minimax", "non_saturating", "relativistic", "wgan", "wgan_gp")
)
TASKS = Kind("task", tuple(sorted(CARDS)))  # one card per task (ganops.cards)
METRICS = Kind("metric", ("classes", "fid", "fid_bootstrap", "fid_inception", "is", "kid", "prdc"))

# Traits the params validator needs besides the names (checked against the implementations too).
CONDITIONAL_ARCHITECTURES = ("dcgan", "resnet")  # a class-conditional variant exists
IMAGE_TO_IMAGE_ARCHITECTURES = ("unet",)  # the restoration tasks' network (image in, image out)
SMOOTHABLE_LOSSES = ("minimax", "non_saturating")  # cross-entropy: one-sided label smoothing applies
# The tasks' traits the validator checks, read from their cards: a new card needs no edit here.
IMAGE_TO_IMAGE_TASKS = tuple(name for name, c in sorted(CARDS.items()) if c.image_to_image)
PAIRED_TASKS = tuple(name for name in IMAGE_TO_IMAGE_TASKS if CARDS[name].image_to_image.learns_from_pairs)
COLOUR_TASKS = tuple(name for name in IMAGE_TO_IMAGE_TASKS if CARDS[name].image_to_image.learns_colour)
FILE_SOURCES = ("celeba", "imagefolder")  # decode image files of any size: data.crop random_patches applies
