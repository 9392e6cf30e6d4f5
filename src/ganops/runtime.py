"""Seeding and device selection, shared by every stage that runs torch."""

from __future__ import annotations

import logging
import random

import numpy as np
import torch

from ganops.errors import ConfigError

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices) from the single ``seed`` in params."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def seeded_generator(*seed_parts: int) -> torch.Generator:
    """A CPU generator seeded from several integers, e.g. (seed, epoch)."""
    combined = 0
    for part in seed_parts:
        combined = (combined * 1_000_003 + int(part)) % 2**63
    return torch.Generator().manual_seed(combined)


def pick_device(requested: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; an explicit CUDA request without CUDA is an error."""
    if requested == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(
                "train.device: cuda was requested but no CUDA device is visible; set it to auto or cpu"
            )
    log.info(
        "device: %s%s", device, f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    )
    return device
