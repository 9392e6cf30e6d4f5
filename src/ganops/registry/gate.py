"""The promotion gate: does a challenger deserve the champion alias?

Each version is scored by its task's primary metric (reports/metrics.json ``primary``): fid_domain,
lower is better, for sampling; PSNR on Y, higher is better, for super-resolution. A challenger
wins when there is no champion, or when, measured with the same evaluator (same sha256) on the
same task and evaluation set, its score beats the champion's by more than ``margin`` and, when
both have 95% intervals, the intervals do not overlap. Scores of different feature networks,
tasks or evaluation sets are never compared, and a non-finite score (NaN, inf: a diverged
generator or a broken evaluation) never wins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """What the gate knows about one registered version."""

    version: str
    score: float  # the value of ``metric``
    evaluator_sha256: str
    ci95: tuple[float, float] | None = None
    metric: str = "fid_domain"
    higher_is_better: bool = False
    evaluation: str = ""  # the task and its evaluation set: scores are compared only when equal

    def tags(self) -> dict[str, str]:
        tags = {self.metric: repr(self.score), "evaluator_sha256": self.evaluator_sha256}
        if self.ci95 is not None:
            tags[f"{self.metric}_ci95"] = f"{self.ci95[0]!r},{self.ci95[1]!r}"
        if self.metric != "fid_domain" or self.evaluation:  # sampling versions keep the tags they had
            tags.update(
                primary_metric=self.metric,
                higher_is_better=str(self.higher_is_better).lower(),
                evaluation=self.evaluation,
            )
        return tags

    @classmethod
    def from_tags(cls, version: str, tags: dict[str, str]) -> Candidate:
        metric = tags.get("primary_metric", "fid_domain")
        interval = tags.get(f"{metric}_ci95")
        low_high = tuple(float(x) for x in interval.split(",")) if interval else None
        return cls(
            version,
            float(tags.get(metric, "nan")),
            tags.get("evaluator_sha256", ""),
            low_high,
            metric,
            tags.get("higher_is_better") == "true",
            tags.get("evaluation", ""),
        )

    def beats_by(self, other: Candidate) -> float:
        """How much better this score is than ``other``'s (positive: better)."""
        return self.score - other.score if self.higher_is_better else other.score - self.score

    def clearly_better(self, other: Candidate) -> bool:
        """Whether the 95% intervals do not overlap, this one on the better side."""
        if self.higher_is_better:
            return self.ci95[0] > other.ci95[1]
        return self.ci95[1] < other.ci95[0]


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def decide(challenger: Candidate, champion: Candidate | None, margin: float = 0.0) -> Decision:
    metric = challenger.metric
    if not math.isfinite(challenger.score):
        return Decision(
            False,
            f"{metric} is {challenger.score}, not a finite number: never promoted. "
            "Check the evaluate stage's reports/metrics.json and the training losses",
        )
    if champion is None:
        return Decision(True, "no champion yet")
    versus = f"champion v{champion.version}"
    if (champion.metric, champion.evaluation) != (metric, challenger.evaluation):
        return Decision(
            False,
            f"{versus} was scored on another task or evaluation set ({champion.metric} on "
            f"{champion.evaluation or 'generate'} vs {metric} on {challenger.evaluation or 'generate'}); "
            "scores are not comparable. Register it under its own model name or promote by hand",
        )
    if not math.isfinite(champion.score):
        return Decision(True, f"{versus}'s {metric} is {champion.score}, not a finite number")
    if champion.evaluator_sha256 != challenger.evaluator_sha256:
        return Decision(
            False,
            f"{versus} was measured with another evaluator ({champion.evaluator_sha256[:12]} vs "
            f"{challenger.evaluator_sha256[:12]}); scores are not comparable. Re-evaluate or promote by hand",
        )
    gain = challenger.beats_by(champion)
    if gain <= margin:
        return Decision(
            False,
            f"{metric} {challenger.score:.4g} vs {versus}'s {champion.score:.4g}: "
            f"improvement {gain:.4g} is not more than the margin {margin:g}",
        )
    if challenger.ci95 and champion.ci95 and not challenger.clearly_better(champion):
        return Decision(
            False,
            f"{metric} {challenger.score:.4g} beats {versus}'s {champion.score:.4g}, but not significantly: "
            f"95% intervals overlap (challenger {challenger.ci95[0]:.4g}..{challenger.ci95[1]:.4g}, champion "
            f"{champion.ci95[0]:.4g}..{champion.ci95[1]:.4g})",
        )
    better = "higher" if challenger.higher_is_better else "lower"
    return Decision(
        True, f"{metric} {challenger.score:.4g} {better} than {versus}'s {champion.score:.4g} by {gain:.4g}"
    )
