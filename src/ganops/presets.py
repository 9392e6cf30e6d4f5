"""Presets: named sets of params overrides, the documented way to train a task on a kind of data.

A preset is what a user would otherwise piece together from docs/restoration.md: ``ganops preset
photos-superres`` prints the `dvc exp run` command that applies it (``--run`` runs it, ``--root``
points it at another folder), so the experiment is an ordinary DVC experiment whose params show in
`dvc exp show`, and nothing hides in a second config file. The numbers each preset reaches, and how
they were measured, are in docs/restoration.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from ganops.errors import ConfigError

PHOTOS = "data/raw/photos"  # where `make photos` puts its 37 photographs


@dataclass(frozen=True)
class Preset:
    summary: str
    overrides: dict[str, object]  # dotted params key -> value, as `dvc exp run -S key=value` takes it

    def arguments(self, root: str | None = None) -> list[str]:
        """`-S key=value` pairs for ``dvc exp run`` (``root`` replaces data.root)."""
        values = {**self.overrides, **({"data.root": root} if root else {})}
        return [a for key, value in values.items() for a in ("-S", f"{key}={_yaml(value)}")]

    def command(self, name: str, root: str | None = None) -> list[str]:
        return ["dvc", "exp", "run", "-n", name, *self.arguments(root)]


def _yaml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(_yaml(v) for v in value) + "]"
    return str(value)


# A folder of photos, cut into patches at the scale they are scored at (a 16:10 photo of 512 px is
# 320 px high); the held-out fifth is scored whole. The evaluator (fid_domain's features) trains
# 250 steps: on 96 px patches its default 1,000 take 6 minutes on 2 cores.
_PHOTO_DATA = {
    "data.source": "imagefolder",
    "data.root": PHOTOS,
    "data.crop": "random_patches",
    "data.native_max_side": 320,
    "data.test_fraction": 0.2,
    "data.whole_test_side": 512,
    "evaluator.min_steps": 250,
    "train.eval_every": 0,
}

PRESETS: dict[str, Preset] = {
    "photos-superres": Preset(
        "x2 super-resolution of photos: 96 px ground truth, L1 for 90% of the run, then the GAN",
        {
            **_PHOTO_DATA,
            "task": "superres",
            "data.image_size": 96,
            "data.patches_per_image": 64,
            "restore.images": 80000,
            "restore.warmup": 0.9,
        },
    ),
    "photos-superres-x4": Preset(
        "x4 super-resolution of photos: 128 px ground truth (32 px inputs), L1 for 90% of the run, then the GAN",
        {
            **_PHOTO_DATA,
            "task": "superres",
            "restore.superres.factor": 4,
            "data.image_size": 128,
            "data.patches_per_image": 64,
            "restore.images": 80000,
            "restore.warmup": 0.9,
        },
    ),
    "photos-inpaint": Preset(
        "free-form holes of 10-40% in photos: 96 px crops, a U-Net that sees 304 px (depth 4, 3 dilated blocks)",
        {
            **_PHOTO_DATA,
            "task": "inpaint",
            "data.image_size": 96,
            "data.patches_per_image": 64,
            "restore.depth": 4,
            "restore.dilated": 3,
            "restore.images": 36000,
            "restore.warmup": 0.8,
        },
    ),
    "photos-colorize": Preset(
        "colorize photos: 96 px crops, L1 for half the run, then the GAN with a lighter L1 (bolder colour)",
        {
            **_PHOTO_DATA,
            "task": "colorize",
            "data.image_size": 96,
            "data.patches_per_image": 64,
            "restore.dilated": 2,
            "restore.images": 36000,
            "restore.warmup": 0.5,
            "restore.l1_weight": 20.0,
        },
    ),
}


def preset(name: str) -> Preset:
    if name not in PRESETS:
        raise ConfigError(f"preset {name!r} does not exist; the presets are: {', '.join(PRESETS)}")
    return PRESETS[name]
