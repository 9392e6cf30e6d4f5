"""Exponential moving average of the generator's weights (Karras et al., 2018; Yazici et al., 2019)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Keeps ``shadow`` = decay * shadow + (1 - decay) * weights after each step.

    Early on the decay is warmed up as (1 + t) / (10 + t), so the average is not dominated by
    the random initial weights. Buffers (BatchNorm statistics) are copied, not averaged.
    With decay 0 the shadow equals the live weights.
    """

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.shadow = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module, step: int) -> None:
        decay = min(self.decay, (1 + step) / (10 + step))
        for avg, live in zip(self.shadow.parameters(), model.parameters(), strict=True):
            avg.lerp_(live.detach(), 1 - decay)
        for avg, live in zip(self.shadow.buffers(), model.buffers(), strict=True):
            avg.copy_(live)

    def state_dict(self) -> dict:
        return self.shadow.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.shadow.load_state_dict(state)
