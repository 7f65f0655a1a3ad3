"""slmkit.yaml: every problem reported at once, with its path, line and fix; templates validate."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from slmkit.config import load_config, parse_gate
from slmkit.errors import ConfigError, ModelError
from slmkit.models import resolve_base_model
from slmkit.templates import render_config, write_template

GOOD = {
    "base_model": "smollm2-135m-instruct",
    "task": {
        "name": "routing",
        "input_fields": ["text"],
        "system_prompt": "Route it.",
        "output_schema": {"type": "object", "required": ["team"], "properties": {"team": {"enum": ["a", "b", "none"]}}},
        "label_field": "team",
        "refusal": {"output": {"team": "none"}},
    },
    "data": {"sources": [{"path": "rows.jsonl"}]},
    "eval": {"gates": ["label_accuracy >= 0.8", "schema_validity >= base + 0.1"]},
}


def write(tmp_path: Path, config: dict) -> Path:
    (tmp_path / "rows.jsonl").write_text('{"text": "x", "output": {"team": "a"}}\n')
    (tmp_path / "slmkit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return tmp_path


def problems(tmp_path: Path, config: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, config))
    return info.value.problems


def test_valid_config_loads_with_defaults_and_root(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    assert config.root == tmp_path.resolve()
    assert config.train.lora.r == 16 and config.serve.port == 8000
    assert config.resolve_path("rows.jsonl").exists()
    assert [g.metric for g in config.eval.parsed_gates()] == ["label_accuracy", "schema_validity"]


def test_every_problem_is_reported_at_once_with_path_and_line(tmp_path):
    bad = yaml.safe_load(yaml.safe_dump(GOOD))
    bad["train"] = {"lora": {"r": 0}, "lerning_rate": 0.1}
    bad["task"]["label_field"] = "queue"
    bad["task"]["refusal"]["output"] = {"team": "nobody"}
    bad["eval"]["gates"].append("label_acuracy >= 0.5")
    bad["data"]["sources"].append({"path": "missing.csv"})
    found = problems(tmp_path, bad)
    text = "\n".join(found)
    # Type errors and the checks across sections, in one report, in file order.
    assert "train.lora.r: input should be greater than 0 (got 0)" in text
    assert "train.lerning_rate: unknown setting; did you mean 'learning_rate'?" in text
    assert "task.label_field: 'queue' is not a property of the output schema" in text
    assert "task.refusal.output: does not match the output schema" in text
    assert "eval.gates[2]: unknown metric 'label_acuracy'; did you mean 'label_accuracy'?" in text
    assert "data.sources[1].path: file not found" in text
    assert len(found) == 6, found
    assert all(p.startswith("line ") for p in found), found
    lines = [int(p.split(":")[0].removeprefix("line ")) for p in found]
    assert lines == sorted(lines)

    bad.pop("train")
    assert len(problems(tmp_path, bad)) == 4


def test_missing_section_and_bad_yaml(tmp_path):
    config = dict(GOOD)
    config.pop("task")
    found = problems(tmp_path, config)
    assert any(p.endswith("task: required; add it (see `slmkit init` for a commented example)") for p in found)
    (tmp_path / "slmkit.yaml").write_text("task: [unclosed\n")
    with pytest.raises(ConfigError, match="line 2, column 1: not valid YAML"):
        load_config(tmp_path)
    with pytest.raises(ConfigError, match=r"no slmkit\.yaml here"):
        load_config(tmp_path / "elsewhere")


def test_schema_that_does_not_parse_is_named(tmp_path):
    bad = yaml.safe_load(yaml.safe_dump(GOOD))
    bad["task"]["output_schema"] = {"type": "object", "properties": {"team": {"type": "strnig"}}}
    found = problems(tmp_path, bad)
    assert any("task.output_schema: not a valid JSON schema at properties/team/type" in p for p in found), found


@pytest.mark.parametrize(
    ("text", "metric", "op", "value", "relative"),
    [
        ("schema_validity >= 0.95", "schema_validity", ">=", 0.95, False),
        ("label_accuracy>=base+0.1", "label_accuracy", ">=", 0.1, True),
        ("exact_match > base - 0.02", "exact_match", ">", -0.02, True),
    ],
)
def test_gate_parsing(text, metric, op, value, relative):
    gate = parse_gate(text)
    assert (gate.metric, gate.op, gate.value, gate.relative_to_base) == (metric, op, value, relative)


def test_gate_checks_relative_to_base():
    gate = parse_gate("label_accuracy >= base + 0.2")
    assert gate.check(0.7, base=0.5) and not gate.check(0.69, base=0.5)
    with pytest.raises(ValueError, match=r"cannot read gate 'accuracy is high'; write 'METRIC >= NUMBER'"):
        parse_gate("accuracy is high")


@pytest.mark.parametrize("kind", ["classification", "extraction"])
def test_init_templates_validate_and_explain_every_section(tmp_path, kind):
    written = write_template(kind, tmp_path / kind)
    config = load_config(written[0])
    text = written[0].read_text()
    # Each key carries its description; options left at their default are shown commented out.
    assert "# Task and release name" in text and "# Pass/fail rules set before training" in text
    assert "# max_steps: null" in text and "# Stop after this many optimizer steps." in text
    assert config.task.name
    # Alert rules out of the box, each on a metric the task has (validation checks labels and embeddings).
    metrics = [rule.metric for rule in config.monitor.alerts]
    assert metrics[:2] == ["schema_valid_rate", "input_drift"] and len(metrics) == 4
    assert ("label_drift" in metrics) == (config.task.label_field is not None)
    rule = "{name: input drift, metric: input_drift, op: '>=', threshold: 1, window: 1h, min_requests: 100}"
    assert f"    - {rule}" in text
    with pytest.raises(Exception, match="already exists"):
        write_template(kind, tmp_path / kind)


def test_rendered_config_round_trips(tmp_path):
    """The commented YAML `slmkit init` writes loads back to exactly the config it was rendered from."""
    settings = yaml.safe_load(yaml.safe_dump(GOOD))
    settings["train"] = {"lora": {"r": 8, "target_modules": ["q_proj", "v_proj"]}, "max_steps": 40}
    settings["serve"] = {"port": 9001, "max_concurrent": 4}
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    original = load_config(write(tmp_path / "a", settings))
    (tmp_path / "b" / "rows.jsonl").write_text('{"text": "x", "output": {"team": "a"}}\n')
    (tmp_path / "b" / "slmkit.yaml").write_text(render_config(settings))
    assert load_config(tmp_path / "b").model_dump() == original.model_dump()


def test_monitor_alerts_and_release_settings_are_validated_naming_the_field(tmp_path):
    good = yaml.safe_load(yaml.safe_dump(GOOD))
    good["monitor"] = {"alerts": [{"metric": "schema_valid_rate", "op": "<", "threshold": 0.95, "window": "15m"}]}
    config = load_config(write(tmp_path, good))
    assert [rule.text for rule in config.monitor.alerts] == ["schema_valid_rate < 0.95 over 15m"]
    assert config.release.blocking == ["schema", "pii", "gold_locked", "rollback"]
    assert (config.release.rehearsal_items, config.release.rehearsal_min_agreement) == (16, 0.9)

    bad = yaml.safe_load(yaml.safe_dump(GOOD))
    bad["monitor"] = {
        "alerts": [
            {"metric": "schema_valid_rat", "op": "<", "threshold": 0.95},
            {"metric": "error_rate", "op": "=>", "threshold": 0.05, "window": "5 minutes"},
            {"metric": "refusal_rate", "op": ">", "threshold": 5},
            {"metric": "latency_p95_ms", "op": ">"},
        ]
    }
    bad["release"] = {"blocking": ["schema", "latncy"], "rehearsal_min_agreement": 1.5}
    text = "\n".join(problems(tmp_path, bad))
    assert "monitor.alerts[0].metric: unknown metric 'schema_valid_rat'; did you mean 'schema_valid_rate'?" in text
    assert "monitor.alerts[1].op: input should be '>', '>=', '<' or '<='" in text
    assert "monitor.alerts[1].window: write a number and a unit, e.g. 30s, 5m, 1h or 1d" in text
    assert "monitor.alerts[3].threshold: required" in text
    assert "release.blocking[1]: input should be 'schema', 'pii', 'gold_locked', 'rollback'" in text
    assert "release.rehearsal_min_agreement: input should be less than or equal to 1" in text
    assert "monitor.alerts[2].threshold: refusal_rate is a share or a probability: use 0 to 1 (got 5)" in text
    assert "line " in text.split("monitor.alerts[0].metric")[0].splitlines()[-1], "each problem names its line"


# --- what used to crash with a traceback ------------------------------------------------------


def test_a_file_that_is_not_utf8_is_named_with_its_line_and_the_fix(tmp_path):
    write(tmp_path, GOOD)
    text = (tmp_path / "slmkit.yaml").read_text()
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "Route it." in row)
    (tmp_path / "slmkit.yaml").write_bytes(text.replace("Route it.", "Route it, café.").encode("latin-1"))
    with pytest.raises(
        ConfigError, match=rf"line {line}, column \d+: not UTF-8 text \(byte 0xe9\); save the file as UTF-8"
    ):
        load_config(tmp_path)


def test_an_output_schema_file_that_is_a_folder_is_a_config_error(tmp_path):
    bad = yaml.safe_load(yaml.safe_dump(GOOD))
    del bad["task"]["output_schema"]
    bad["task"]["output_schema_file"] = "schemas"
    (tmp_path / "schemas").mkdir()
    (found,) = problems(tmp_path, bad)
    assert re.fullmatch(
        r"line \d+: task\.output_schema_file: .*schemas is a folder; name the JSON schema file in it", found
    )


@pytest.mark.parametrize("spec", ["models/tiny-llama", "./tiny-llama", "../elsewhere/model", "weights/model.gguf"])
def test_a_base_model_path_that_does_not_exist_is_named_not_taken_for_a_hub_id(tmp_path, spec):
    (tmp_path / "models").mkdir()
    (tmp_path / "weights").mkdir()
    (found,) = problems(tmp_path, {**GOOD, "base_model": spec})
    assert found.startswith(f"line 1: base_model: no such model directory or file: {tmp_path / spec}; point it at")
    with pytest.raises(ModelError, match="no such model directory or file") as caught:
        resolve_base_model(spec, tmp_path)
    assert "Hugging Face" not in str(caught.value) and "fetch" not in str(caught.value)


def test_a_hub_id_is_still_a_hub_id(tmp_path):
    config = load_config(write(tmp_path, {**GOOD, "base_model": "Qwen/Qwen2.5-0.5B-Instruct"}))
    assert config.base_model == "Qwen/Qwen2.5-0.5B-Instruct"  # no local folder Qwen/: not a path


def test_validate_checks_the_base_model_without_loading_it(tmp_path, capsys):
    from tests.test_cli import run_cli

    write(tmp_path, {**GOOD, "base_model": "smolm2-135m-instruct"})
    code, _, err = run_cli(capsys, "validate", "-p", str(tmp_path))
    assert code == 2 and "Traceback" not in err
    assert (
        "line 1: base_model: unknown base model 'smolm2-135m-instruct': not a built-in alias (smollm2-135m-instruct, "
        in err
    )
    write(tmp_path, GOOD)
    code, out, err = run_cli(capsys, "validate", "-p", str(tmp_path))
    assert code == 0 and "base model smollm2-135m-instruct" in out, err
