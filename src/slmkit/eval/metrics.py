"""Task metrics over gold items: pure functions of (gold outputs, parsed predictions)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slmkit.task import Parsed, Task


@dataclass(frozen=True)
class Metric:
    value: float
    low: float  # 95% interval
    high: float
    n: int

    def as_dict(self) -> dict[str, Any]:
        return {"value": round(self.value, 4), "ci95": [round(self.low, 4), round(self.high, 4)], "n": self.n}


def wilson(successes: int, n: int, z: float = 1.96) -> Metric:
    """A proportion with its Wilson score interval (sane at 0%, 100% and small n)."""
    if n == 0:
        return Metric(float("nan"), float("nan"), float("nan"), 0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return Metric(p, max(0.0, centre - half), min(1.0, centre + half), n)


def macro_f1(gold: Sequence[Any], predicted: Sequence[Any], labels: Sequence[Any]) -> float:
    """Mean F1 over the labels that occur in gold or predictions (None = no label predicted)."""
    present = [lab for lab in labels if lab in set(gold) or lab in set(predicted)]
    if not present:
        return float("nan")
    scores = []
    for lab in present:
        tp = sum(1 for g, p in zip(gold, predicted, strict=True) if g == lab and p == lab)
        fp = sum(1 for g, p in zip(gold, predicted, strict=True) if g != lab and p == lab)
        fn = sum(1 for g, p in zip(gold, predicted, strict=True) if g == lab and p != lab)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def bootstrap(statistic: Any, n: int, *, rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of statistic(indices) over resampled item indices."""
    rng = random.Random(seed)
    values = sorted(statistic([rng.randrange(n) for _ in range(n)]) for _ in range(rounds))
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return float("nan"), float("nan")
    return values[int(0.025 * (len(values) - 1))], values[int(0.975 * (len(values) - 1))]


def score(task: Task, gold: Sequence[dict[str, Any]], predictions: Sequence[Parsed]) -> dict[str, Metric]:
    """Every metric the task supports, keyed by the names gates use."""
    n = len(gold)
    if len(predictions) != n:
        raise ValueError(f"{len(predictions)} predictions for {n} gold items")
    values = [p.value if p.is_json and isinstance(p.value, dict) else None for p in predictions]
    out: dict[str, Metric] = {
        "schema_validity": wilson(sum(p.valid for p in predictions), n),
        "exact_match": wilson(
            sum(
                1
                for g, p in zip(gold, predictions, strict=True)
                if p.valid and task.canonical(p.value) == task.canonical(g)
            ),
            n,
        ),
    }
    for name in task.fields:
        hits = sum(
            1 for g, v in zip(gold, values, strict=True) if v is not None and name in v and v[name] == g.get(name)
        )
        out[f"field_accuracy.{name}"] = wilson(hits, n)

    label = task.cfg.label_field
    if label is not None and task.labels is not None:
        gold_labels = [g.get(label) for g in gold]
        pred_labels = [v.get(label) if v is not None else None for v in values]
        out["label_accuracy"] = wilson(sum(g == p for g, p in zip(gold_labels, pred_labels, strict=True)), n)
        f1 = macro_f1(gold_labels, pred_labels, task.labels)
        low, high = bootstrap(
            lambda idx: macro_f1([gold_labels[i] for i in idx], [pred_labels[i] for i in idx], task.labels or []),
            n,
        )
        out["label_macro_f1"] = Metric(f1, low, high, n)

    if task.refusal_output is not None:
        gold_refuse = [task.is_refusal(g) for g in gold]
        pred_refuse = [p.valid and task.is_refusal(p.value) for p in predictions]
        both = sum(g and p for g, p in zip(gold_refuse, pred_refuse, strict=True))
        out["refusal_precision"] = wilson(both, sum(pred_refuse))
        out["refusal_recall"] = wilson(both, sum(gold_refuse))
    return out


def confusion(task: Task, gold: Sequence[dict[str, Any]], predictions: Sequence[Parsed]) -> dict[str, dict[str, int]]:
    """gold label -> predicted label (or '(invalid)') -> count."""
    label = task.cfg.label_field
    table: dict[str, dict[str, int]] = {}
    if label is None:
        return table
    for g, p in zip(gold, predictions, strict=True):
        got = p.value.get(label) if p.is_json and isinstance(p.value, dict) else None
        row = table.setdefault(str(g.get(label)), {})
        key = str(got) if got is not None else "(invalid)"
        row[key] = row.get(key, 0) + 1
    return table
