"""Task metrics over gold items: pure functions of (gold outputs, parsed predictions)."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
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
    """Mean F1 over the labels that occur in gold or predictions (None = no label predicted).

    One pass over the items (the bootstrap calls this a thousand times on a 64-label gold set).
    """
    tp: Counter[Any] = Counter()
    fp: Counter[Any] = Counter()
    fn: Counter[Any] = Counter()
    for g, p in zip(gold, predicted, strict=True):
        if g == p:
            tp[g] += 1
        else:
            fp[p] += 1
            fn[g] += 1
    seen = set(tp) | set(fp) | set(fn)
    present = [lab for lab in labels if lab in seen]
    if not present:
        return float("nan")
    scores = [2 * tp[lab] / (2 * tp[lab] + fp[lab] + fn[lab]) if tp[lab] else 0.0 for lab in present]
    return sum(scores) / len(scores)


def bootstrap(statistic: Any, n: int, *, rounds: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of statistic(indices) over resampled item indices; reproducible
    for a seed. Resamples where the statistic is undefined (NaN) are dropped before ranking."""
    rng = random.Random(seed)
    drawn = (statistic([rng.randrange(n) for _ in range(n)]) for _ in range(rounds))
    values = sorted(v for v in drawn if not math.isnan(v))
    if not values:
        return float("nan"), float("nan")
    return values[int(0.025 * (len(values) - 1))], values[int(0.975 * (len(values) - 1))]


def score(
    task: Task,
    gold: Sequence[dict[str, Any]],
    predictions: Sequence[Parsed],
    *,
    normalize: Mapping[str, Sequence[str]] | None = None,
    rounds: int = 1000,
) -> dict[str, Metric]:
    """Every metric the task supports, keyed by the names gates use.

    Proportions carry Wilson intervals, F1s bootstrap ones. `normalize` (eval.normalize) sets how
    field values compare in the field metrics; exact match and field accuracy stay exact.
    """
    from slmkit.eval import fields

    n = len(gold)
    if len(predictions) != n:
        raise ValueError(f"{len(predictions)} predictions for {n} gold items")
    values = fields.answers(predictions)
    out: dict[str, Metric] = {
        "schema_validity": wilson(sum(p.valid for p in predictions), n),
        "exact_match": wilson(sum(exact(task, p, g) for g, p in zip(gold, predictions, strict=True)), n),
    }
    for name in task.fields:
        hits = sum(
            1 for g, v in zip(gold, values, strict=True) if v is not None and name in v and v[name] == g.get(name)
        )
        out[f"field_accuracy.{name}"] = wilson(hits, n)

    counts = fields.field_counts(task, gold, predictions, normalize)
    for name, per_item in counts.items():
        tp, fp, fn = (sum(c[k] for c in per_item) for k in range(3))
        out[f"field_precision.{name}"] = wilson(tp, tp + fp)
        out[f"field_recall.{name}"] = wilson(tp, tp + fn)
        out[f"field_f1.{name}"] = _f1_metric(fields.f1_statistic([per_item]), n, rounds)
    if counts:
        out["field_f1"] = _f1_metric(fields.f1_statistic(list(counts.values())), n, rounds)
    nulls, slots = fields.null_slots(task, predictions)
    out["null_field_rate"] = wilson(nulls, slots)
    out["invented_field_rate"] = wilson(sum(fields.invents(task, g, v) for g, v in zip(gold, values, strict=True)), n)

    label = task.cfg.label_field
    if label is not None and task.labels is not None:
        gold_labels = [g.get(label) for g in gold]
        pred_labels = [v.get(label) if v is not None else None for v in values]
        out["label_accuracy"] = wilson(sum(g == p for g, p in zip(gold_labels, pred_labels, strict=True)), n)
        labels = task.labels
        out["label_macro_f1"] = _f1_metric(
            lambda idx: macro_f1([gold_labels[i] for i in idx], [pred_labels[i] for i in idx], labels), n, rounds
        )

    if task.refusal_output is not None:
        gold_refuse = [refuses(task, g) for g in gold]
        pred_refuse = [p.valid and refuses(task, p.value) for p in predictions]
        both = sum(g and p for g, p in zip(gold_refuse, pred_refuse, strict=True))
        out["refusal_rate"] = wilson(sum(pred_refuse), n)
        out["refusal_precision"] = wilson(both, sum(pred_refuse))
        out["refusal_recall"] = wilson(both, sum(gold_refuse))
    return out


def exact(task: Task, parsed: Parsed, gold: Mapping[str, Any]) -> bool:
    """A schema-valid answer equal to gold, key order aside."""
    return parsed.valid and task.canonical(parsed.value) == task.canonical(gold)


def refuses(task: Task, output: Any) -> bool:
    """`output` is the task's refusal, or carries the refusal's label (an out-of-scope item, whatever
    its other fields say). False when the task has no refusal."""
    refusal = task.refusal_output
    if refusal is None or not isinstance(output, dict):
        return False
    label = task.cfg.label_field
    if label is not None and label in refusal and output.get(label) == refusal[label]:
        return True
    return task.canonical(output) == refusal


def latency(seconds: Sequence[float]) -> dict[str, float]:
    """Mean, p50 and p95 (nearest rank) of per-item seconds."""
    from slmkit.eval.paired import percentile

    if not seconds:
        return {"mean_s": float("nan"), "p50_s": float("nan"), "p95_s": float("nan")}
    return {
        "mean_s": sum(seconds) / len(seconds),
        "p50_s": percentile(seconds, 50),
        "p95_s": percentile(seconds, 95),
    }


def _f1_metric(statistic: Callable[[Sequence[int]], float], n: int, rounds: int) -> Metric:
    low, high = bootstrap(statistic, n, rounds=rounds)
    return Metric(statistic(range(n)), low, high, n)


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
