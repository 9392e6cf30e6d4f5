"""The generator file (models/generator.pt): weights plus the ArchSpec that rebuilds the network.

Kept apart from the training loop so that what only reads a trained generator (evaluate,
export, register, serve) does not depend on the training code.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ganops.errors import DataError
from ganops.files import save_torch
from ganops.models import ArchSpec, build_generator


def save_generator(
    path: Path, G: torch.nn.Module, spec: ArchSpec, step: int, note: str | None = None
) -> None:
    """Weights and architecture only (plus an optional note), so the same weights give the same bytes
    and whatever reads them is rerun only when they really change."""
    weights = {k: v.detach().cpu().contiguous() for k, v in G.state_dict().items()}
    saved = {"arch": spec.to_dict(), "state_dict": weights, "step": step}
    if note:
        saved["note"] = note
    save_torch(saved, path)


def load_generator(path: str | Path, device: torch.device | str = "cpu") -> tuple[torch.nn.Module, ArchSpec]:
    """Rebuild the generator from models/generator.pt (weights only: nothing is unpickled)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: not found; run the train stage first (`ganops train`)")
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        spec = ArchSpec(**saved["arch"])
        G = build_generator(spec)
        G.load_state_dict(saved["state_dict"])
    except (RuntimeError, KeyError, TypeError) as err:
        raise DataError(f"{path}: not a ganops generator file ({err}); rerun the train stage") from None
    return G.to(device).eval(), spec
