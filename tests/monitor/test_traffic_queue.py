"""The production review queue: strata and their shares, never an item twice, the random share's
unbiased accuracy estimate, the export formats, the import's checks, the reviewed-items source."""

from __future__ import annotations

import csv
import json
import random
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from slmkit.config import PiiConfig, TrafficReviewConfig
from slmkit.errors import DataError
from slmkit.monitor import RequestLog, RequestRecord
from slmkit.monitor.capture import Redactor, capture_row, purge_expired
from slmkit.monitor.queue import ReviewAnswer, build_queue, estimates, queue_items, quotas, record_answers
from slmkit.monitor.review_export import export_items
from slmkit.monitor.review_import import answer_item, import_answers
from slmkit.monitor.reviewed import write_reviewed_source
from slmkit.registry import Registry
from tests.monitor.conftest import T0, Monitored

RIGHT = {"category": "billing", "priority": "normal", "order_id": None, "product": None}
REDACTOR = Redactor(PiiConfig())


def stamp(i: int, base: Any = T0) -> str:
    return (base + timedelta(seconds=i)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def capture(log: RequestLog, count: int, *, first: int = 0, base: Any = T0, **fields: Any) -> list[str]:
    """`count` captured requests (ids req-<n>); `fields` values may be callables of n."""
    rows, ids = [], []
    for n in range(first, first + count):
        values = {k: (v(n) if callable(v) else v) for k, v in fields.items()}
        values.setdefault("label", "billing")
        answer = json.dumps({**RIGHT, "category": values["label"]})
        record = RequestRecord(f"req-{n}", "support-tickets", 5.0, "ok", release_name="support-tickets",
                               release_version=1, ts=stamp(n, base), **values)  # fmt: skip
        message = {"role": "user", "content": json.dumps({"subject": f"ticket {n}", "body": f"my order {n} is late"})}
        rows.append(capture_row(record, [message], answer, REDACTOR))
        ids.append(f"req-{n}")
    log.append([], rows)
    return ids


def test_each_stratum_gets_its_share_and_no_request_is_queued_twice(monitored: Monitored) -> None:
    settings = TrafficReviewConfig(size=40, random=0.25, low_confidence=0.25, flagged=0.25, refused=0.25)
    with monitored.log() as log:
        capture(log, 200, confidence=lambda n: (n % 100) / 100, flagged=lambda n: n % 10 == 0,
                refused=lambda n: n % 7 == 0)  # fmt: skip
        first = build_queue(log, settings, actor="test")
        assert first.counts == {"random": 10, "low_confidence": 10, "flagged": 10, "refused": 10}
        items = {i.request_id: i for i in queue_items(log)}
        flagged = [i for i in items.values() if i.stratum == "flagged"]
        assert all(i.flagged for i in flagged)
        assert all(i.refused or i.escalate for i in items.values() if i.stratum == "refused")
        lows = sorted(i.confidence or 0 for i in items.values() if i.stratum == "low_confidence")
        unqueued = [n for n in range(200) if f"req-{n}" not in items]
        # The least confident of what the other strata left: nothing left behind is less sure.
        assert max(lows) <= min((n % 100) / 100 for n in unqueued)

        # The next draw takes none of them again; its random share comes only from newer traffic.
        capture(log, 40, first=200)
        second = build_queue(log, settings, actor="test")
        again = queue_items(log)
        assert len(again) == len({i.request_id for i in again}) == 80
        newer = [i for i in again if i.batch == second.batch and i.stratum == "random"]
        assert newer and all(int(i.request_id.split("-")[1]) >= 200 for i in newer)
        assert second.population == 40

        # Answered items never come back, however many draws follow.
        record_answers(log, [ReviewAnswer(i.request_id, "accept", None, "", "alice", "2026-12-01T10:00:00.000Z",
                                          "test") for i in again])  # fmt: skip
        third = build_queue(log, settings, actor="test")
        answered = {i.request_id for i in again}
        assert not answered & {i.request_id for i in queue_items(log) if i.batch == third.batch}


def test_quotas_add_up_to_the_size() -> None:
    assert quotas(7, {"random": 0.2, "low_confidence": 0.4, "flagged": 0.2, "refused": 0.2}) == {
        "random": 2,
        "low_confidence": 3,
        "flagged": 1,
        "refused": 1,
    }  # fmt: skip  (1.4, 2.8, 1.4, 1.4: the largest remainder first, ties in STRATA order)
    assert sum(quotas(101, {"random": 0.3, "low_confidence": 0.3, "flagged": 0.3, "refused": 0.1}).values()) == 101


def test_the_random_share_estimates_production_accuracy_where_the_hard_cases_would_not(monitored: Monitored) -> None:
    """Answers are right unless unsure: the hard-case strata are mostly wrong, the random share is not."""
    rng = random.Random(7)
    confidence = [rng.random() for _ in range(2000)]
    right = [c > 0.3 or rng.random() < 0.5 for c in confidence]  # production accuracy 0.85 in expectation
    truth = sum(right) / len(right)
    settings = TrafficReviewConfig(size=400, random=0.5, low_confidence=0.5, flagged=0.0, refused=0.0)
    with monitored.log() as log:
        capture(log, 2000, confidence=lambda n: confidence[n])
        build_queue(log, settings, actor="test")
        items = queue_items(log)
        record_answers(
            log,
            [ReviewAnswer(i.request_id, "accept" if right[int(i.request_id[4:])] else "reject", None, "", "bob",
                          "2026-12-01T10:00:00.000Z", "test") for i in items],
        )  # fmt: skip
        (estimate,) = estimates(queue_items(log), "category")
    assert estimate.reviewed == 200 and estimate.low <= truth <= estimate.high
    hard = [right[int(i.request_id[4:])] for i in items if i.stratum == "low_confidence"]
    assert sum(hard) / len(hard) < estimate.low  # what reviewing only hard cases would have "measured"
    assert "random share" in estimate.line()


def _queued(monitored: Monitored, tmp_path: Path, count: int = 6) -> tuple[Path, list[Any]]:
    settings = TrafficReviewConfig(size=count, random=0.5, low_confidence=0.5, flagged=0.0, refused=0.0)
    with monitored.log() as log:
        capture(log, count, confidence=lambda n: 0.1 * n)
        build_queue(log, settings, actor="test")
        items = queue_items(log, open_only=True)
    return export_items(monitored.config.task.name, items, tmp_path / "export").out_dir, items


def _import(monitored: Monitored, path: Path, reviewer: str | None = "carol") -> Any:
    with monitored.log() as log, Registry(monitored.config.state_dir) as registry:
        return import_answers(monitored.config, log, registry, path, reviewer=reviewer)


def test_the_export_writes_csv_html_label_studio_and_argilla_shapes(monitored: Monitored, tmp_path: Path) -> None:
    with monitored.log() as log:
        message = {"role": "user", "content": json.dumps({"subject": "<script>x</script>", "body": "hello"})}
        record = RequestRecord("req-x", "support-tickets", 5.0, "ok", release_name="support-tickets",
                               release_version=1, ts=stamp(0), confidence=0.2)  # fmt: skip
        log.append([], [capture_row(record, [message], json.dumps(RIGHT), REDACTOR)])
        build_queue(log, TrafficReviewConfig(size=1, random=1.0, low_confidence=0, flagged=0, refused=0))
        out = export_items(monitored.config.task.name, queue_items(log, open_only=True), tmp_path / "x").out_dir

    page = (out / "queue.html").read_text()
    assert "<script>x" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    (row,) = list(csv.DictReader((out / "queue.csv").open()))
    assert row["id"] == "requests.db#req-x" and row["stratum"] == "random" and row["verdict"] == ""
    # Label Studio reads a JSON list of tasks; each names its item, the served answer is a prediction.
    (task,) = json.loads((out / "label-studio.json").read_text())
    assert task["data"]["slmkit_id"] == "requests.db#req-x" and json.loads(task["data"]["answer"]) == RIGHT
    (prediction,) = task["predictions"]
    assert prediction["result"][0]["from_name"] == "correction" and prediction["score"] == 0.2
    labeling = ET.fromstring((out / "label-studio.xml").read_text())
    names = {e.get("name") for e in labeling.iter() if e.get("name")}
    assert {"input", "answer", "verdict", "correction", "note"} <= names
    assert {c.get("value") for c in labeling.iter("Choice")} == {"accept", "correct", "reject"}
    # Argilla: one record per line, fields input/answer, the served answer suggested as the correction.
    (record_line,) = (out / "argilla.jsonl").read_text().splitlines()
    argilla = json.loads(record_line)
    assert argilla["id"] == "requests.db#req-x" and argilla["correction"] == argilla["answer"]
    settings = json.loads((out / "argilla-settings.json").read_text())
    assert [q["name"] for q in settings["questions"]] == ["verdict", "correction", "note"]
    manifest = json.loads((out / "queue.json").read_text())
    assert manifest["items"] == [{"id": "requests.db#req-x", "stratum": "random", "release": "support-tickets@1",
                                  "batch": 1}]  # fmt: skip


def test_a_csv_with_problems_names_each_line_and_column_and_records_nothing(
    monitored: Monitored, tmp_path: Path
) -> None:
    out, _ = _queued(monitored, tmp_path)
    path = out / "queue.csv"
    rows = list(csv.DictReader(path.open()))
    rows[0]["verdict"] = "maybe"
    rows[1]["verdict"], rows[1]["correction"] = "correct", '{"category": "billing", '
    rows[2]["verdict"], rows[2]["correction"] = "correct", json.dumps({**RIGHT, "category": "refunds"})
    rows[3]["verdict"], rows[3]["input"] = "accept", "something else"
    rows[4]["verdict"], rows[4]["correction"] = "reject", json.dumps({**RIGHT, "priority": "high"})
    rows[5]["verdict"], rows[5]["id"] = "accept", "requests.db#nope"
    _write_csv(path, rows)

    with pytest.raises(DataError) as caught:
        _import(monitored, path)
    message = str(caught.value)
    assert "6 problem(s); nothing was recorded" in message
    assert f"{path}:2: column verdict: 'maybe' is not one of accept, correct, reject" in message
    assert (
        f"{path}:3: column correction: not JSON (Expecting property name enclosed in double quotes at line 1" in message
    )
    assert f"{path}:4: column correction: category: 'refunds' is not one of" in message
    assert f"{path}:5: column input: differs from what was exported" in message
    assert f"{path}:6: column correction: given with verdict reject" in message
    assert f"{path}:7: column id: 'requests.db#nope' is not in the production review queue" in message
    with monitored.log() as log:
        assert all(i.current is None for i in queue_items(log))


def test_answers_come_back_from_the_csv_label_studio_and_argilla_and_become_a_source(
    monitored: Monitored, tmp_path: Path
) -> None:
    out, items = _queued(monitored, tmp_path)
    ids = [i.id for i in items]
    fixed = {**RIGHT, "category": "shipping", "priority": "high"}
    # queue.csv: two answered, the rest left for later.
    rows = list(csv.DictReader((out / "queue.csv").open()))
    rows[0]["verdict"] = "accept"
    rows[1]["verdict"], rows[1]["correction"] = "Correct", json.dumps(fixed)
    _write_csv(out / "queue.csv", rows)
    first = _import(monitored, out / "queue.csv")
    assert (dict(first.recorded), first.skipped) == ({"accept": 1, "correct": 1}, 4)
    assert _import(monitored, out / "queue.csv").unchanged == 2  # the same file again records nothing new

    # A Label Studio export (its documented shape): the newest annotation that was not cancelled counts.
    tasks = json.loads((out / "label-studio.json").read_text())
    tasks[2]["annotations"] = [
        {"was_cancelled": True, "result": [_ls("verdict", choices=["accept"])]},
        {"completed_by": {"email": "dan@example.org"}, "result": [
            _ls("verdict", choices=["correct"]), _ls("correction", text=[json.dumps(fixed)]), _ls("note", text=["eh"])
        ]},
    ]  # fmt: skip
    tasks[3]["annotations"] = [{"result": [_ls("verdict", choices=["reject"]),
                                           _ls("correction", text=[tasks[3]["data"]["answer"]])]}]  # fmt: skip
    (tmp_path / "ls-export.json").write_text(json.dumps(tasks))
    assert dict(_import(monitored, tmp_path / "ls-export.json", reviewer=None).recorded) == {"correct": 1, "reject": 1}

    # Argilla records: nested responses (to_json) and flat ones (to_list(flatten=True)).
    lines = [json.loads(line) for line in (out / "argilla.jsonl").read_text().splitlines()]
    nested = {**lines[4], "responses": {"verdict": [{"value": "accept", "user_id": "u-1", "status": "submitted"}]}}
    flat = {**lines[5], "verdict.responses": ["correct"], "verdict.responses.users": ["u-2"],
            "correction.responses": [json.dumps(fixed)]}  # fmt: skip
    (tmp_path / "argilla-export.jsonl").write_text(json.dumps(nested) + "\n" + json.dumps(flat) + "\n")
    assert dict(_import(monitored, tmp_path / "argilla-export.jsonl", reviewer=None).recorded) == {
        "accept": 1, "correct": 1,
    }  # fmt: skip

    with monitored.log() as log:
        current = {i.id: i.current for i in queue_items(log)}
        assert current[ids[2]].reviewer == "label-studio:dan@example.org" and current[ids[2]].note == "eh"
        assert current[ids[4]].reviewer == "argilla:u-1"
        source = write_reviewed_source(monitored.config, log)
    # Accepted and corrected items are rows; the rejected one teaches nothing and is counted.
    assert source.rows == 5 and source.left_out == {"rejected (no right answer given)": 1}
    written = [json.loads(line) for line in source.path.read_text().splitlines()]
    assert [r["id"] for r in written] == sorted(i for i in ids if i != ids[3])
    by_id = {r["id"]: r for r in written}
    assert by_id[ids[1]]["output"] == fixed and by_id[ids[0]]["output"] == RIGHT
    assert by_id[ids[1]]["reviewer"] == "carol" and by_id[ids[1]]["verdict"] == "correct"
    number = ids[0].rsplit("-", 1)[1]
    assert by_id[ids[0]]["answered_by"] == "support-tickets@1" and by_id[ids[0]]["subject"] == f"ticket {number}"
    assert by_id[ids[0]]["tags"][0] == "production"
    # Audited, once per import that recorded something.
    with Registry(monitored.config.state_dir) as registry:
        imports = [e for e in registry.audit_log(limit=20) if e.action == "traffic_review"]
    assert len(imports) == 3 and imports[-1].actor == "carol"


def test_one_answer_at_a_time_is_checked_against_the_schema(monitored: Monitored, tmp_path: Path) -> None:
    _, items = _queued(monitored, tmp_path, count=2)
    with monitored.log() as log, Registry(monitored.config.state_dir) as registry:
        with pytest.raises(DataError, match="column correction: priority: 'soon' is not one of"):
            answer_item(
                monitored.config, log, registry, items[0].id, "correct", correction={**RIGHT, "priority": "soon"}
            )
        with pytest.raises(DataError, match="the same as the served answer; write accept"):
            answer_item(monitored.config, log, registry, items[0].id, "correct", correction=RIGHT)
        done = answer_item(monitored.config, log, registry, items[0].id, "accept", reviewer="erin")
        assert done.verdict == "accept" and queue_items(log, open_only=True)[0].id == items[1].id


def test_unreviewed_queue_items_go_with_their_capture_and_reviewed_ones_stay(monitored: Monitored) -> None:
    settings = TrafficReviewConfig(size=4, random=1.0, low_confidence=0, flagged=0, refused=0)
    old = T0 - timedelta(days=40)
    with monitored.log() as log:
        capture(log, 4, base=old)
        build_queue(log, settings)
        first = queue_items(log)[0]
        record_answers(log, [ReviewAnswer(first.request_id, "accept", None, "", "f", stamp(0), "test")])
        purge_expired(log, retention_days=30, now=T0)
        assert [i.request_id for i in queue_items(log)] == [first.request_id]


def _ls(name: str, **value: Any) -> dict[str, Any]:
    kind = "choices" if "choices" in value else "textarea"
    return {"from_name": name, "to_name": "answer", "type": kind, "value": value}


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
