"""Refusing by confidence: the label probability under which an answer is replaced by the refusal.

With label scoring every answer carries the probability of its label among the allowed ones
(slmkit.models.labels). Refusing below a threshold trades wrong answers for refusals; how good
that trade is depends on the threshold, so it is chosen on validation rows (never on gold) for a
target refusal precision: the share of refused answers that would have been wrong. The largest
threshold whose refusals reach the target is taken (it refuses the most while staying that
precise), provided it refuses at least MIN_REFUSED validation answers, so a handful of lucky rows
cannot set it. The whole coverage / accuracy curve is reported beside it, on validation and gold.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MIN_REFUSED = 10
GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class CurvePoint:
    threshold: float
    coverage: float  # share of items answered (probability >= threshold)
    accuracy: float | None  # accuracy on the answered items
    refused: int
    refusal_precision: float | None  # share of refused items whose answer was wrong

    def as_dict(self) -> dict[str, Any]:
        return {
            "threshold": round(self.threshold, 4),
            "coverage": round(self.coverage, 4),
            "accuracy": None if self.accuracy is None else round(self.accuracy, 4),
            "refused": self.refused,
            "refusal_precision": None if self.refusal_precision is None else round(self.refusal_precision, 4),
        }


def curve_point(probabilities: Sequence[float], correct: Sequence[bool], threshold: float) -> CurvePoint:
    """Coverage, accuracy of the answered and precision of the refused, refusing below `threshold`."""
    answered = [c for p, c in zip(probabilities, correct, strict=True) if p >= threshold]
    refused = [c for p, c in zip(probabilities, correct, strict=True) if p < threshold]
    n = len(probabilities)
    return CurvePoint(
        threshold,
        len(answered) / n if n else 0.0,
        sum(answered) / len(answered) if answered else None,
        len(refused),
        sum(not c for c in refused) / len(refused) if refused else None,
    )


def curve(probabilities: Sequence[float], correct: Sequence[bool], extra: Sequence[float] = ()) -> list[CurvePoint]:
    """The curve at the GRID thresholds (and any `extra` ones), in rising order."""
    return [curve_point(probabilities, correct, t) for t in sorted({*GRID, *extra})]


def choose_threshold(probabilities: Sequence[float], correct: Sequence[bool], target_precision: float) -> float:
    """The largest threshold whose refusals are at least `target_precision` wrong answers (0: never refuse).

    Candidates are the observed probabilities themselves (refusing below each one), so the choice
    is exact for these rows rather than rounded to a grid.
    """
    best = 0.0
    for threshold in sorted(set(probabilities)):
        point = curve_point(probabilities, correct, threshold)
        if (
            point.refused >= MIN_REFUSED
            and point.refusal_precision is not None
            and point.refusal_precision >= target_precision
        ):
            best = threshold
    return best
