"""Metrics and gates on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from slmkit.config import TaskConfig, parse_gate
from slmkit.eval.gates import check_gates
from slmkit.eval.metrics import Metric, bootstrap, confusion, macro_f1, score, wilson
from slmkit.task import Task

SCHEMA = {
    "type": "object",
    "required": ["team", "ticket"],
    "additionalProperties": False,
    "properties": {"team": {"enum": ["net", "hw", "none"]}, "ticket": {"type": ["string", "null"]}},
}


@pytest.fixture
def task() -> Task:
    cfg = TaskConfig(
        name="t",
        input_fields=["text"],
        system_prompt="x",
        output_schema=SCHEMA,
        label_field="team",
        refusal={"output": {"team": "none", "ticket": None}},
    )
    return Task(cfg, SCHEMA)


def test_wilson_interval_matches_the_formula():
    m = wilson(8, 10)
    assert m.value == 0.8
    # Wilson 95% for 8/10: (0.4902, 0.9433), computed by hand from the closed form.
    assert m.low == pytest.approx(0.4902, abs=1e-4) and m.high == pytest.approx(0.9433, abs=1e-4)
    assert wilson(0, 20).low == 0.0 and wilson(0, 20).high == pytest.approx(0.1611, abs=1e-4)
    assert math.isnan(wilson(0, 0).value)


def test_macro_f1_by_hand():
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", None]
    # a: tp1 fp0 fn1 -> 2/3; b: tp2 fp1 fn0 -> 4/5; c: tp0 -> 0  => mean 0.4889
    assert macro_f1(gold, pred, ["a", "b", "c"]) == pytest.approx((2 / 3 + 4 / 5 + 0) / 3)
    # A label nobody used or predicted does not drag the mean down.
    assert macro_f1(["a"], ["a"], ["a", "b"]) == 1.0


def test_score_on_a_small_gold_set(task):
    gold = [
        {"team": "net", "ticket": "A1"},
        {"team": "hw", "ticket": None},
        {"team": "none", "ticket": None},
        {"team": "net", "ticket": None},
    ]
    texts = [
        '{"team": "net", "ticket": "A1"}',  # exact
        '{"team": "net", "ticket": null}',  # valid, wrong label
        '{"ticket": null, "team": "none"}',  # exact (key order does not matter), a correct refusal
        "the network team",  # not JSON
    ]
    m = score(task, gold, [task.parse(t) for t in texts])
    assert m["schema_validity"].value == 0.75
    assert m["exact_match"].value == 0.5
    assert m["label_accuracy"].value == 0.5
    assert m["field_accuracy.ticket"].value == 0.75  # the invalid answer counts as wrong, never skipped
    # labels: net tp1 fp1 fn1 -> .5 ; hw tp0 -> 0 ; none tp1 -> 1  => .5
    assert m["label_macro_f1"].value == pytest.approx(0.5)
    assert m["refusal_precision"].value == 1.0 and m["refusal_recall"].value == 1.0
    table = confusion(task, gold, [task.parse(t) for t in texts])
    assert table == {"net": {"net": 1, "(invalid)": 1}, "hw": {"net": 1}, "none": {"none": 1}}


def test_bootstrap_interval_brackets_the_statistic():
    values = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 5
    low, high = bootstrap(lambda idx: sum(values[i] for i in idx) / len(idx), len(values), rounds=500)
    assert low < 0.7 < high and high - low < 0.35


def test_gates_pass_fail_and_never_skip():
    metrics = {"label_accuracy": Metric(0.8, 0.7, 0.9, 100), "schema_validity": Metric(0.97, 0.9, 0.99, 100)}
    base = {"label_accuracy": Metric(0.5, 0.4, 0.6, 100)}
    gates = [
        parse_gate(g)
        for g in (
            "schema_validity >= 0.95",
            "label_accuracy >= base + 0.25",
            "label_accuracy >= base + 0.35",
            "exact_match >= 0.5",
        )
    ]
    results = check_gates(gates, metrics, base)
    assert [r.passed for r in results] == [True, True, False, False]
    assert results[2].threshold == pytest.approx(0.85)
    assert "not computed" in results[3].reason
    assert "FAIL" in results[2].line() and "95% CI 0.700-0.900" in results[2].line()
    no_base = check_gates([gates[1]], metrics, None)
    assert not no_base[0].passed and "compare_base" in no_base[0].reason
