"""`slmkit init --from FILE`: a project inferred from an export, every choice commented, that builds."""

from __future__ import annotations

import csv
import json

import yaml

from slmkit.config import load_config
from slmkit.data import run_data_build
from tests.conftest import EXAMPLE, SHARED_DATA
from tests.test_cli import run_cli

QUEUES = ["Hardware", "HR Support", "Access", "Storage"]


def test_a_csv_with_a_label_column_becomes_a_routing_project(tmp_path, capsys):
    export = tmp_path / "export.csv"
    with export.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["Ticket ID", "Document", "Topic_group", "opened"])
        for i in range(120):
            queue = QUEUES[i % 4] if i != 7 else "Hardwre"  # one typo: a rare value the comments flag
            writer.writerow(
                [f"T{i:04d}", f"ticket {i} about my {queue.lower()} request, please help", queue, "2026-01-02"]
            )
    project = tmp_path / "routing"
    code, out, err = run_cli(capsys, "init", str(project), "--from", str(export))
    assert code == 0, err
    assert "output_columns: 'Topic_group' is the label column: 5 distinct values over 120 rows" in out
    assert "task.input_fields: 'Document' (text" in out and "id_field: 'Ticket ID'" in out
    text = (project / "slmkit.yaml").read_text()
    assert '- "Hardware"  # 30 rows' in text or '- "Hardware"  # 29 rows' in text
    assert '- "Hardwre"  # 1 rows  (rare: a typo or a real class? check it)' in text
    assert text.count("# inferred:") >= 4  # every inferred choice says what it came from
    spec = yaml.safe_load(text)
    assert spec["task"]["input_fields"] == ["Document"] and spec["task"]["label_field"] == "Topic_group"
    assert spec["data"]["sources"][0]["output_columns"] == {"Topic_group": "Topic_group"}

    code, out, _ = run_cli(capsys, "validate", "-p", str(project))
    assert code == 0
    built = run_data_build(load_config(project))
    assert built.counts["input"] == 120 and built.counts["train"] > 0 and built.counts["gold"] > 0


def test_a_jsonl_of_answers_becomes_an_extraction_schema_with_enums_nulls_and_patterns(tmp_path, capsys):
    project = tmp_path / "tickets"
    code, out, err = run_cli(capsys, "init", str(project), "--from", str(EXAMPLE / "data" / "tickets.jsonl"))
    assert code == 0, err
    spec = yaml.safe_load((project / "slmkit.yaml").read_text())
    props = spec["task"]["output_schema"]["properties"]
    assert spec["data"]["sources"][0]["output_field"] == "output"
    assert spec["task"]["label_field"] == "category"
    assert spec["task"]["input_fields"] == ["subject", "body"]  # ids, customer codes and timestamps are not inputs
    assert spec["data"]["sources"][0]["id_field"] == "ticket_id"
    assert props["order_id"] == {"type": ["string", "null"], "pattern": "^ORD-[0-9]{6}$"}
    assert None in props["product"]["enum"] and "Lumora AeroBook 14" in props["product"]["enum"]
    assert "(1 do not: the build will reject those rows, check them)" in out
    built = run_data_build(load_config(project))
    assert built.counts["train"] > 400


def test_a_shared_routing_set_infers_its_label_set(tmp_path, capsys):
    rows = [json.loads(line) for line in (SHARED_DATA / "hwu64" / "train.jsonl").read_text().splitlines()[:2000]]
    export = tmp_path / "hwu.jsonl"
    export.write_text(
        "".join(json.dumps({"text": r["input"], "intent": json.loads(r["output"])["intent"]}) + "\n" for r in rows)
    )
    code, _, err = run_cli(capsys, "init", str(tmp_path / "hwu"), "--from", str(export))
    assert code == 0, err
    spec = yaml.safe_load((tmp_path / "hwu" / "slmkit.yaml").read_text())
    labels = {json.loads(r["output"])["intent"] for r in rows}
    assert set(spec["task"]["output_schema"]["properties"]["intent"]["enum"]) == labels
    assert spec["task"]["label_field"] == "intent" and spec["task"]["input_fields"] == ["text"]


def test_a_file_without_an_answer_is_refused_with_the_reason(tmp_path, capsys):
    export = tmp_path / "notes.jsonl"
    export.write_text(
        "".join(json.dumps({"note": f"note number {i} with its own words {i * 7}"}) + "\n" for i in range(20))
    )
    code, _, err = run_cli(capsys, "init", str(tmp_path / "p"), "--from", str(export))
    assert code != 0 and "found no answer to learn" in err and "Traceback" not in err
