"""When is a supervised domain classifier good enough to measure FID in its features?

An absolute accuracy bar cannot fit every labelled set: 0.9 is easy for ten garment classes and
out of reach for nine look-alike categories of icons. The rule here is relative to chance:

- chance is the share of the test split's most frequent class (what always guessing it scores);
- skill = (accuracy - chance) / (1 - chance), the share of the way from chance to perfect
  (Cohen's kappa against the majority guess); it must reach ``evaluator.min_skill``;
- and the accuracy must beat chance in a one-sided binomial test at ``P_VALUE`` on the test
  count, so a handful of lucky test images cannot pass.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

P_VALUE = 1e-3


@dataclass(frozen=True)
class GateVerdict:
    accuracy: float
    chance: float
    skill: float
    p_value: float
    test_count: int
    min_skill: float

    @property
    def usable(self) -> bool:
        return self.skill >= self.min_skill and self.p_value < P_VALUE

    def to_dict(self) -> dict:
        return {**asdict(self), "usable": self.usable, "max_p_value": P_VALUE}

    def describe(self) -> str:
        return (
            f"test accuracy {self.accuracy:.3f} on {self.test_count} images, chance {self.chance:.3f}, "
            f"skill {self.skill:.3f} (needs >= {self.min_skill}), binomial p {self.p_value:.2g} "
            f"(needs < {P_VALUE:g})"
        )


def chance_level(labels: np.ndarray) -> float:
    """The accuracy of always guessing the most frequent class."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64))
    return float(counts.max() / counts.sum())


def binomial_tail(successes: int, trials: int, p: float) -> float:
    """P(X >= successes) for X ~ Binomial(trials, p), summed in log space (exact, no scipy)."""
    if successes <= 0:
        return 1.0
    if p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [
        math.lgamma(trials + 1)
        - math.lgamma(k + 1)
        - math.lgamma(trials - k + 1)
        + k * log_p
        + (trials - k) * log_q
        for k in range(successes, trials + 1)
    ]
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def judge(accuracy: float, test_labels: np.ndarray, min_skill: float) -> GateVerdict:
    n = len(test_labels)
    chance = chance_level(test_labels)
    skill = (accuracy - chance) / (1 - chance) if chance < 1 else 0.0
    p_value = binomial_tail(round(accuracy * n), n, chance)
    return GateVerdict(accuracy, chance, skill, p_value, n, min_skill)
