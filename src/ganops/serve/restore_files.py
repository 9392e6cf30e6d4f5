"""``ganops restore``: files and folders through restore.py, the code path of the server's route.

A file gives one PNG (default ``NAME-TASK.png`` beside it); a folder gives a folder of PNGs of the
same names (default ``FOLDER-TASK``), with a progress bar. For inpainting, ``--mask`` is the mask
file, or for a folder a folder holding a mask of each image's name (suffix aside: photo.jpg's mask
may be photo.png). Each PNG is written atomically,
so a stopped run leaves whole files only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ganops.cards import card
from ganops.errors import ServeError
from ganops.files import atomic_path
from ganops.serve.contract import RestoreLimits

ACCEPTED_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class Restored:
    """What ``restore_paths`` did: what it wrote, in words, and which files did not fit the model."""

    written: str
    warned: dict[str, list[str]] = field(default_factory=dict)  # restore.fit_warning -> its files

    def warnings(self) -> list[str]:
        """One line per warning, naming its first files: a folder of 500 colour photos is one line."""
        lines = []
        for warning, files in self.warned.items():
            more = f" and {len(files) - 3} more" if len(files) > 3 else ""
            lines.append(f"{', '.join(files[:3])}{more}: {warning}")
        return lines


def _pairs(
    source: Path, mask: Path | None, out: Path | None, task: str
) -> list[tuple[Path, Path | None, Path]]:
    """(image, mask or None, output) for every image to restore."""
    if source.is_file():
        if mask is not None and not mask.is_file():
            raise ServeError(f"--mask {mask}: not a file; give the mask of {source.name}")
        name = f"{source.stem}-{task}.png"
        target = out / name if out is not None and out.is_dir() else out or source.with_name(name)
        return [(source, mask, target)]
    images = sorted(p for p in source.iterdir() if p.suffix.lower() in ACCEPTED_SUFFIXES and p.is_file())
    if not images:
        raise ServeError(f"{source}: no .png or .jpg files in this folder; give a file or another folder")
    if mask is not None and not mask.is_dir():
        raise ServeError(f"--mask {mask}: not a folder; with a folder of images give a folder of masks")
    folder = out or source.with_name(f"{source.name}-{task}")
    if folder.is_file():
        raise ServeError(f"--out {folder}: is a file; give a folder for a folder of images")
    masks = _masks_by_stem(mask) if mask is not None else {}
    if mask is not None and (missing := [p.name for p in images if p.stem not in masks]):
        raise ServeError(
            f"--mask {mask}: no mask for {', '.join(missing[:5])}; put one of the same name there "
            "(any of .png, .jpg: photo.jpg's mask may be photo.png)"
        )
    return [(p, masks.get(p.stem), folder / f"{p.stem}.png") for p in images]


def _masks_by_stem(folder: Path) -> dict[str, Path]:
    """The masks in ``folder`` by name without suffix: a JPEG photo's mask is best a (lossless) PNG."""
    masks: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in ACCEPTED_SUFFIXES and path.is_file():
            if path.stem in masks:
                raise ServeError(
                    f"--mask {folder}: {masks[path.stem].name} and {path.name} are both masks of "
                    f"{path.stem}; keep one"
                )
            masks[path.stem] = path
    return masks


def restore_paths(
    model: str,
    source: Path,
    mask: Path | None,
    out: Path | None,
    limits: RestoreLimits,
    provider: str = "auto",
    tracking_uri: str | None = None,
) -> Restored:
    """Restore ``source`` (a file or a folder); returns what was written and the warnings."""
    from ganops.progress import Progress
    from ganops.serve.restore import BadInput, restore_upload
    from ganops.serve.session import GeneratorSession
    from ganops.serve.source import resolve

    session = GeneratorSession(resolve(model, tracking_uri), provider)
    task = session.info.task
    facts = card(task).image_to_image
    if facts is None:
        raise ServeError(
            f"{model}: a sampling generator restores nothing; use `ganops sample`, or a restoration model"
        )
    if "mask" in facts.fields and mask is None:
        raise ServeError(f"--mask: the {task} model needs the mask (non-zero pixels = holes); give --mask")
    pairs = _pairs(source, mask, out, task)
    restored = Restored("")
    with Progress(len(pairs), f"restore ({task})", unit="img") as progress:
        for image, hole, target in pairs:
            try:
                png, warning = restore_upload(
                    session.run, session.info, limits, image.read_bytes(), hole.read_bytes() if hole else None
                )
            except BadInput as err:
                raise ServeError(f"{image}: {err}") from None
            with atomic_path(target) as tmp:
                tmp.write_bytes(png)
            progress.update()
            if warning:
                restored.warned.setdefault(warning, []).append(str(image))
    restored.written = (
        str(pairs[0][2]) if source.is_file() else f"{len(pairs)} images to {pairs[0][2].parent}"
    )
    return restored
