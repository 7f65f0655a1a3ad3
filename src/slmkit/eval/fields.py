"""Field-level metrics for extraction: per-field true / false positives and negatives, with the
comparisons `eval.normalize` configures, and the rates of null and invented fields.

A field is compared per gold item, gold value g against predicted value p (null when the answer
is not a JSON object or lacks the key), both normalized first:

- TP: p and g are both non-null and equal.
- FP: p is non-null and g is null, or p differs from g.
- FN: g is non-null and p does not equal it (null or different).
- both null: a true negative, counted nowhere.

So a wrong value is one FP and one FN, as in slot filling: it invents a value and misses the
gold one. Precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2TP / (2TP + FP + FN).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from slmkit.task import Parsed, Task

Counts = tuple[int, int, int]  # (tp, fp, fn) of one field on one item


def normalize_value(value: Any, kinds: Sequence[str]) -> Any:
    """`value` as `eval.normalize` compares it; null stays null, a value a normalizer cannot read
    is left as it is (it then simply does not match).

    case: casefold text; whitespace: trim and collapse runs of spaces; date: any common date
    to YYYY-MM-DD; number: "1,200" and 1200.0 equal 1200; set: a list compared as a set.
    Text normalizers apply to each element of a list.
    """
    if value is None:
        return None
    for kind in kinds:
        if kind != "set":
            value = _each(value, kind)
    if "set" in kinds and isinstance(value, list):
        value = sorted({json.dumps(v, sort_keys=True, ensure_ascii=False) for v in value})
    return value


def _each(value: Any, kind: str) -> Any:
    if isinstance(value, list):
        return [_each(v, kind) for v in value]
    if kind == "case":
        return value.casefold() if isinstance(value, str) else value
    if kind == "whitespace":
        return " ".join(value.split()) if isinstance(value, str) else value
    from slmkit.data.normalize import NormalizeError, normalize_field

    try:
        return normalize_field(kind, value)
    except NormalizeError:
        return value


def field_outcome(gold: Any, predicted: Any, kinds: Sequence[str] = ()) -> Counts:
    """(tp, fp, fn) of one field on one item, as the module docstring defines them."""
    g, p = normalize_value(gold, kinds), normalize_value(predicted, kinds)
    if p is not None and g is not None and p == g:
        return 1, 0, 0
    return 0, int(p is not None), int(g is not None)


def extraction_fields(task: Task) -> list[str]:
    """Every output field except the label, which has accuracy and macro-F1 instead."""
    return [name for name in task.fields if name != task.cfg.label_field]


def answers(predictions: Sequence[Parsed]) -> list[dict[str, Any] | None]:
    """The JSON object of each answer (schema-valid or not), None for one that is not an object."""
    return [p.value if p.is_json and isinstance(p.value, dict) else None for p in predictions]


def field_counts(
    task: Task,
    gold: Sequence[Mapping[str, Any]],
    predictions: Sequence[Parsed],
    normalize: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, list[Counts]]:
    """Extraction field -> (tp, fp, fn) per gold item, in order."""
    normalize = normalize or {}
    values = answers(predictions)
    return {
        name: [
            field_outcome(g.get(name), v.get(name) if v is not None else None, normalize.get(name, ()))
            for g, v in zip(gold, values, strict=True)
        ]
        for name in extraction_fields(task)
    }


def f1(counts: Sequence[Counts]) -> float:
    """Micro F1 of summed counts: 2TP / (2TP + FP + FN); NaN when nothing was due or predicted."""
    tp = sum(c[0] for c in counts)
    wrong = sum(c[1] + c[2] for c in counts)
    return 2 * tp / (2 * tp + wrong) if tp or wrong else float("nan")


def f1_statistic(columns: Sequence[Sequence[Counts]]) -> Callable[[Sequence[int]], float]:
    """F1 pooled over one or more fields' per-item counts, on the items at the given indices."""
    return lambda idx: f1([column[i] for column in columns for i in idx])


def null_slots(task: Task, predictions: Sequence[Parsed]) -> tuple[int, int]:
    """(null or missing fields, fields) over the answers that are JSON objects."""
    objects = [v for v in answers(predictions) if v is not None]
    nulls = sum(1 for v in objects for name in task.fields if v.get(name) is None)
    return nulls, len(objects) * len(task.fields)


def invents(task: Task, gold: Mapping[str, Any], predicted: Mapping[str, Any] | None) -> bool:
    """The answer holds a key the schema does not have, or a value where gold has null."""
    if predicted is None:
        return False
    allowed = set(task.fields)
    return any(key not in allowed for key in predicted) or any(
        predicted.get(name) is not None and gold.get(name) is None for name in task.fields
    )
