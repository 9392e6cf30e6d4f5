"""Latent vectors from seeds: the one definition shared by ``ganops sample`` and the server.

Both call ``seed_latents``, so a seed names the same images everywhere. NumPy's PCG64 stream is
consumed row by row, so the first k rows for a seed do not depend on how many were asked for:
``n=4`` gives the first four images of ``n=16``.
"""

from __future__ import annotations

from statistics import NormalDist

import numpy as np

MAX_SEED = 2**32 - 1  # the same range as params.yaml's seed


def seed_latents(seed: int, n: int, latent_dim: int) -> np.ndarray:
    """``n`` standard-normal latents (float32, shape (n, latent_dim)) determined by ``seed``."""
    if not 0 <= seed <= MAX_SEED:
        raise ValueError(f"seed must be in [0, {MAX_SEED}], got {seed}")
    return np.random.default_rng(seed).standard_normal((n, latent_dim), dtype=np.float32)


def slerp(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """Spherical interpolation from ``a`` to ``b`` (1-D) in ``steps`` points, ends included.

    Gaussian latents concentrate near a sphere; a straight line between two of them passes
    through low-norm points the generator rarely saw, so the arc gives more typical images.
    """
    t = np.linspace(0.0, 1.0, steps, dtype=np.float64)[:, None]
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    cos = np.dot(a64, b64) / max(np.linalg.norm(a64) * np.linalg.norm(b64), 1e-12)
    omega = np.arccos(np.clip(cos, -1.0, 1.0))
    if omega < 1e-6:  # (nearly) the same direction: the arc is the line
        out = (1 - t) * a64 + t * b64
    else:
        out = (np.sin((1 - t) * omega) * a64 + np.sin(t * omega) * b64) / np.sin(omega)
    return out.astype(np.float32)


def interpolation_latents(seed_a: int, seed_b: int, steps: int, latent_dim: int) -> np.ndarray:
    """The path between the first latent of ``seed_a`` and the first latent of ``seed_b``."""
    return slerp(seed_latents(seed_a, 1, latent_dim)[0], seed_latents(seed_b, 1, latent_dim)[0], steps)


def with_class(latents: np.ndarray, label: int, class_cdf: list[float]) -> np.ndarray:
    """Latents that a class-conditional ganops generator renders as class ``label``.

    Exported conditional generators read their class from the first latent coordinate
    (``LatentClasses``: class = how many cumulative-prior bounds Phi(z[0]) exceeds), so ``G(z)``
    stays a single-input graph. Here Phi(z[0]) is squeezed into the middle 98% of ``label``'s
    interval of that prior, keeping each image's own draw within the class; the other
    coordinates are untouched.
    """
    if not 0 <= label < len(class_cdf):
        raise ValueError(f"class must be in [0, {len(class_cdf) - 1}], got {label}")
    lo = 0.0 if label == 0 else class_cdf[label - 1]
    hi = class_cdf[label]
    if hi <= lo:
        raise ValueError(f"class {label} has zero probability in the training data's class prior")
    normal = NormalDist()
    out = latents.copy()
    for row in out:
        u = lo + (hi - lo) * (0.01 + 0.98 * normal.cdf(float(row[0])))
        row[0] = normal.inv_cdf(u)
    return out
