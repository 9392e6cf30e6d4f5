"""The promotion gate: does a challenger deserve the champion alias?

A challenger wins when there is no champion, or when, measured with the same evaluator
(same sha256), its fid_domain is lower than the champion's by more than ``margin`` and, when
both have bootstrap 95% intervals, the intervals do not overlap (challenger's upper bound
below the champion's lower bound). FIDs from different feature networks are never compared, and
a non-finite fid_domain (NaN, inf: a diverged generator or a broken evaluation) never wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """What the gate knows about one registered version."""

    version: str
    fid_domain: float
    evaluator_sha256: str
    fid_ci95: tuple[float, float] | None = None

    def tags(self) -> dict[str, str]:
        tags = {"fid_domain": repr(self.fid_domain), "evaluator_sha256": self.evaluator_sha256}
        if self.fid_ci95 is not None:
            tags["fid_domain_ci95"] = f"{self.fid_ci95[0]!r},{self.fid_ci95[1]!r}"
        return tags

    @classmethod
    def from_tags(cls, version: str, tags: dict[str, str]) -> Candidate:
        interval = tags.get("fid_domain_ci95")
        low_high = tuple(float(x) for x in interval.split(",")) if interval else None
        return cls(version, float(tags.get("fid_domain", "inf")), tags.get("evaluator_sha256", ""), low_high)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(challenger: Candidate, champion: Candidate | None, margin: float = 0.0) -> Decision:
    if not math.isfinite(challenger.fid_domain):
        return Decision(
            False,
            f"fid_domain is {challenger.fid_domain}, not a finite number: never promoted. "
            "Check the evaluate stage's reports/metrics.json and the training losses",
        )
    if champion is None:
        return Decision(True, "no champion yet")
    versus = f"champion v{champion.version}"
    if not math.isfinite(champion.fid_domain):
        return Decision(True, f"{versus}'s fid_domain is {champion.fid_domain}, not a finite number")
    if champion.evaluator_sha256 != challenger.evaluator_sha256:
        return Decision(
            False,
            f"{versus} was measured with another evaluator ({champion.evaluator_sha256[:12]} vs "
            f"{challenger.evaluator_sha256[:12]}); FIDs are not comparable. Re-evaluate or promote by hand",
        )
    gain = champion.fid_domain - challenger.fid_domain
    if gain <= margin:
        return Decision(
            False,
            f"fid_domain {challenger.fid_domain:.4g} vs {versus}'s {champion.fid_domain:.4g}: "
            f"improvement {gain:.4g} is not more than the margin {margin:g}",
        )
    if challenger.fid_ci95 and champion.fid_ci95 and challenger.fid_ci95[1] >= champion.fid_ci95[0]:
        return Decision(
            False,
            f"fid_domain {challenger.fid_domain:.4g} < {versus}'s {champion.fid_domain:.4g}, but not significantly: "
            f"95% intervals overlap (challenger upper {challenger.fid_ci95[1]:.4g} >= champion lower "
            f"{champion.fid_ci95[0]:.4g})",
        )
    return Decision(
        True, f"fid_domain {challenger.fid_domain:.4g} < {versus}'s {champion.fid_domain:.4g} by {gain:.4g}"
    )
