"""Precision, recall (Kynkaanniemi et al., 2019), density and coverage (Naeem et al., 2020).

Each real (fake) sample's neighbourhood is the ball to its k-th nearest real (fake) neighbour.
Precision: share of fakes inside some real ball. Recall: share of reals inside some fake ball.
Density: how many real balls a fake falls in, over k, averaged. Coverage: share of real balls
holding at least one fake. Computed in the domain feature space, in chunks to bound memory.
"""

from __future__ import annotations

import torch


def _kth_radius(x: torch.Tensor, k: int, chunk: int) -> torch.Tensor:
    radii = []
    for start in range(0, len(x), chunk):
        d = torch.cdist(x[start : start + chunk], x)
        radii.append(d.kthvalue(k + 1, dim=1).values)  # +1: the point itself is at distance 0
    return torch.cat(radii)


def prdc(real: torch.Tensor, fake: torch.Tensor, k: int = 5, chunk: int = 1024) -> dict[str, float]:
    real, fake = real.float(), fake.float()
    r_real, r_fake = _kth_radius(real, k, chunk), _kth_radius(fake, k, chunk)
    in_real_balls = torch.zeros(len(fake))  # per fake: how many real balls contain it
    real_covered = torch.zeros(len(real), dtype=torch.bool)
    real_recalled = torch.zeros(len(real), dtype=torch.bool)
    for start in range(0, len(real), chunk):
        d = torch.cdist(real[start : start + chunk], fake)  # (chunk, n_fake)
        inside = d < r_real[start : start + chunk, None]
        in_real_balls += inside.sum(0)
        real_covered[start : start + chunk] = inside.any(1)
        real_recalled[start : start + chunk] = (d < r_fake[None, :]).any(1)
    return {
        "precision": float((in_real_balls > 0).float().mean()),
        "recall": float(real_recalled.float().mean()),
        "density": float(in_real_balls.mean() / k),
        "coverage": float(real_covered.float().mean()),
    }
