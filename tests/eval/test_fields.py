"""Field metrics, normalizers, null / invented / refusal rates and latency, on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from slmkit.config import TaskConfig
from slmkit.eval.fields import field_outcome, normalize_value
from slmkit.eval.metrics import latency, score
from slmkit.eval.paired import percentile
from slmkit.task import Task

SCHEMA = {
    "type": "object",
    "required": ["team", "ticket", "due"],
    "additionalProperties": False,
    "properties": {
        "team": {"enum": ["net", "hw", "none"]},
        "ticket": {"type": ["string", "null"]},
        "due": {"type": ["string", "null"]},
    },
}
REFUSAL = {"team": "none", "ticket": None, "due": None}


@pytest.fixture
def task() -> Task:
    cfg = TaskConfig(
        name="t",
        input_fields=["text"],
        system_prompt="x",
        output_schema=SCHEMA,
        label_field="team",
        refusal={"output": REFUSAL},
    )
    return Task(cfg, SCHEMA)


def test_normalizers_compare_what_the_config_says():
    assert normalize_value("  ORD-1   A ", ["case", "whitespace"]) == "ord-1 a"
    assert normalize_value("14 March 2026", ["date"]) == normalize_value("2026-03-14", ["date"]) == "2026-03-14"
    assert normalize_value("1,200", ["number"]) == normalize_value(1200.0, ["number"]) == 1200
    assert normalize_value(["b", "A", "a"], ["case", "set"]) == normalize_value(["B", "a"], ["case", "set"])
    assert normalize_value(["a", "b"], []) != normalize_value(["b", "a"], [])  # a list is ordered unless 'set'
    assert normalize_value("soon", ["date"]) == "soon"  # unreadable: kept, so it simply does not match
    assert normalize_value(None, ["case"]) is None


def test_field_outcome_defines_tp_fp_fn():
    assert field_outcome("A1", "A1") == (1, 0, 0)
    assert field_outcome("A1", "a1") == (0, 1, 1)  # a wrong value invents one and misses the gold one
    assert field_outcome("A1", "a1", ["case"]) == (1, 0, 0)
    assert field_outcome(None, "X") == (0, 1, 0)
    assert field_outcome("A1", None) == (0, 0, 1)
    assert field_outcome(None, None) == (0, 0, 0)


def test_field_null_invented_and_refusal_metrics_by_hand(task):
    gold = [
        {"team": "net", "ticket": "A1", "due": "2026-03-14"},
        {"team": "hw", "ticket": None, "due": None},
        {"team": "net", "ticket": "C3", "due": None},
        REFUSAL,
        {"team": "none", "ticket": "Z9", "due": None},  # out of scope by its label alone
    ]
    texts = [
        '{"team": "net", "ticket": "a1", "due": "14 March 2026"}',  # matches once normalized
        '{"team": "hw", "ticket": "B2", "due": null}',  # invents a ticket
        '{"team": "net", "ticket": null, "due": null, "extra": 1}',  # misses C3, invents a key (schema-invalid)
        "no idea",
        '{"team": "none", "ticket": null, "due": null}',  # a refusal
    ]
    predictions = [task.parse(t) for t in texts]
    m = score(task, gold, predictions, normalize={"ticket": ["case"], "due": ["date"]}, rounds=200)
    # ticket: item 1 TP, item 2 FP, items 3 and 5 FN -> P 1/2, R 1/3, F1 2/(2+1+2) = 0.4
    assert (m["field_precision.ticket"].value, m["field_recall.ticket"].value) == (0.5, pytest.approx(1 / 3))
    assert m["field_f1.ticket"].value == pytest.approx(0.4)
    assert m["field_f1.due"].value == 1.0  # one TP, every other due null on both sides
    assert m["field_f1"].value == pytest.approx(4 / 7)  # pooled: tp 2, fp 1, fn 2
    assert "field_f1.team" not in m  # the label has accuracy and macro-F1 instead
    # 4 JSON answers x 3 fields = 12 slots; null: 0 + 1 + 2 + 2
    assert m["null_field_rate"].value == pytest.approx(5 / 12) and m["null_field_rate"].n == 12
    assert m["invented_field_rate"].value == pytest.approx(2 / 5)  # items 2 and 3
    # out of scope: items 4 and 5; refused: item 5
    assert m["refusal_rate"].value == pytest.approx(1 / 5)
    assert m["refusal_precision"].value == 1.0 and m["refusal_recall"].value == 0.5
    # Every metric carries an interval around its value.
    for name, metric in m.items():
        if not math.isnan(metric.value):
            assert metric.low <= metric.value <= metric.high, name

    raw = score(task, gold, predictions, rounds=200)
    assert raw["field_f1.ticket"].value == 0.0 and raw["field_f1.due"].value == 0.0  # no normalizers: no match
    assert raw["exact_match"].value == 0.0  # exact match ignores normalizers: item 1 is not exact


def test_latency_mean_and_nearest_rank_percentiles():
    assert percentile(list(range(1, 21)), 50) == 10 and percentile(list(range(1, 21)), 95) == 19
    assert percentile([5.0], 95) == 5.0 and math.isnan(percentile([], 50))
    summary = latency([0.2, 0.2, 0.2, 1.0])
    assert summary == {"mean_s": pytest.approx(0.4), "p50_s": 0.2, "p95_s": 1.0}
