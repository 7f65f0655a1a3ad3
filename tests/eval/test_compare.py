"""The candidate against a release, item by item, and the no_regression_vs gate it decides."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slmkit.config import TaskConfig, load_config, parse_gate
from slmkit.errors import ConfigError
from slmkit.eval.compare import Regression, compare
from slmkit.eval.gates import check_gates
from slmkit.eval.paired import mcnemar_exact, newcombe_paired
from slmkit.task import Task

SCHEMA = {
    "type": "object",
    "required": ["team", "ticket"],
    "additionalProperties": False,
    "properties": {"team": {"enum": ["net", "hw"]}, "ticket": {"type": ["string", "null"]}},
}


@pytest.fixture
def task() -> Task:
    cfg = TaskConfig(name="t", input_fields=["text"], system_prompt="x", output_schema=SCHEMA, label_field="team")
    return Task(cfg, SCHEMA)


def answer(team: str) -> str:
    return f'{{"team": "{team}", "ticket": null}}'


@pytest.fixture
def paired(task):
    """12 items: the release is right on 0-9, the candidate on 0-7 and 10."""
    gold = [{"team": "net", "ticket": None}] * 12
    release = [answer("net") if i < 10 else answer("hw") for i in range(12)]
    candidate = [answer("net") if i < 8 or i == 10 else answer("hw") for i in range(12)]
    ids = [f"i{i}" for i in range(12)]
    parse = task.parse
    return ids, gold, [parse(t) for t in candidate], [parse(t) for t in release]


def test_compare_pairs_items_and_lists_the_flips(task, paired):
    ids, gold, candidate, release = paired
    result = compare(task, ids, gold, candidate, release, rounds=300)
    acc = result["label_accuracy"]
    assert (acc.candidate, acc.release) == (9 / 12, 10 / 12) and acc.difference == pytest.approx(-1 / 12)
    assert acc.right_to_wrong == ["i8", "i9"] and acc.wrong_to_right == ["i10"]
    # discordant pairs b=1, c=2: 2 * (C(3,0) + C(3,1)) / 8 = 1
    assert acc.p_value == mcnemar_exact(1, 2) == 1.0
    assert (acc.low, acc.high) == newcombe_paired(8, 1, 2, 1)
    assert result["exact_match"].right_to_wrong == ["i8", "i9"]
    assert result["schema_validity"].difference == 0.0 and result["schema_validity"].p_value == 1.0
    f1 = result["label_macro_f1"]
    assert f1.method == "paired bootstrap" and f1.low <= f1.difference <= f1.high
    assert compare(task, ids, gold, candidate, release, rounds=300)["label_macro_f1"] == f1  # seeded


def test_no_regression_gate_decides_on_the_lower_bound(task, paired):
    ids, gold, candidate, release = paired
    regression = Regression("production", "t@1", 12, 0, compare(task, ids, gold, candidate, release, rounds=300))
    low = regression.comparisons["label_accuracy"].low
    tight, loose = (
        parse_gate("label_accuracy no_regression_vs production margin 0.02"),
        parse_gate(f"label_accuracy no_regression_vs production margin {-low + 0.01:.3f}"),
    )
    failed, passed = check_gates([tight, loose], {}, None, {"production": regression})
    assert not failed.passed and passed.passed
    assert (failed.observed, failed.ci95[0], failed.threshold) == (pytest.approx(-1 / 12), low, -0.02)
    assert failed.compared_with == "t@1"
    line = failed.line()
    assert line.startswith("FAIL  label_accuracy no_regression_vs production margin 0.02")
    assert f"difference -0.083 [95% CI {low:+.3f} to" in line and "vs t@1, lower bound needs >= -0.020" in line
    assert "McNemar p=1.000, 2 right->wrong" in line
    table = "\n".join(regression.lines())
    assert "regression vs t@1 (production), 12 paired items:" in table
    assert "label_accuracy             0.833   0.750  -0.083" in table


def test_no_regression_gate_without_a_release_or_a_comparison(task):
    gate = parse_gate("exact_match no_regression_vs production")
    first, broken = (
        check_gates([gate], {}, None, {"production": Regression("production", None)})[0],
        check_gates(
            [gate], {}, None, {"production": Regression("production", "t@1", error="its eval report is missing")}
        )[0],
    )
    assert first.passed and "no release behind 'production' yet" in first.reason
    assert not broken.passed and broken.reason == "its eval report is missing"
    assert "vs t@1 (its eval report is missing)" in broken.line()


def test_gate_grammar_reads_no_regression():
    gate = parse_gate("label_accuracy no_regression_vs production margin 0.02")
    assert (gate.metric, gate.vs_alias, gate.margin, gate.value) == ("label_accuracy", "production", 0.02, -0.02)
    assert parse_gate("field_f1 no_regression_vs staging").margin == 0.0
    with pytest.raises(ValueError, match="no_regression_vs ALIAS margin NUMBER"):
        parse_gate("label_accuracy no_regression production")


def test_eval_config_names_the_yaml_path_of_each_problem(tmp_path: Path):
    config = {
        "base_model": "smollm2-135m-instruct",
        "task": {
            "name": "t",
            "input_fields": ["text"],
            "system_prompt": "x",
            "output_schema": {**SCHEMA, "properties": {**SCHEMA["properties"], "order_id": {"type": "string"}}},
            "label_field": "team",
        },
        "data": {"sources": [{"path": "rows.jsonl"}]},
        "eval": {
            "normalize": {"order_idd": ["case"], "ticket": ["caps"], "order_id": ["case", "whitespace"]},
            "gates": ["null_field_rate no_regression_vs production", "field_f1.order_id no_regression_vs production"],
        },
    }
    (tmp_path / "rows.jsonl").write_text("")
    (tmp_path / "slmkit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path)
    text = "\n".join(info.value.problems)
    assert "eval.normalize.ticket[0]: input should be 'case', 'whitespace', 'date', 'number' or 'set'" in text
    assert "eval.normalize.order_idd: is not a property of the output schema; did you mean 'order_id'?" in text
    assert "eval.gates[0]: 'null_field_rate' cannot be compared item by item with a release" in text
    assert "gates[1]" not in text
    del config["eval"]["normalize"]["order_idd"], config["eval"]["normalize"]["ticket"]
    config["eval"]["gates"].pop(0)
    (tmp_path / "slmkit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    loaded = load_config(tmp_path)
    assert loaded.eval.normalize == {"order_id": ["case", "whitespace"]}
