"""`slmkit review import` of production review answers, and `slmkit review answer` of one item.

Reads what a reviewer filled in, by the file's form:
- queue.csv (`.csv`, as `slmkit review export --traffic` wrote it): verdict, correction, note;
- a Label Studio export (`.json`, a list of tasks): the newest annotation that was not cancelled,
  its `verdict` choice, `correction` and `note` text areas;
- Argilla records (`.jsonl`, one per line, as `dataset.records.to_json` or `to_list` write them,
  nested `responses` or flat `verdict.responses`), or plain lines {"id", "verdict", "correction", "note"}.
An item with no verdict yet is skipped: a queue may be answered in parts. Every problem is
reported at once with its line (or task) and column, and nothing is recorded until there are
none: an unknown id, changed input or answer text, an unknown verdict, a correction that is not
JSON or breaks the output schema, a correction with accept or reject. The same answer imported
twice is recorded once. Then the reviewed source (slmkit.monitor.reviewed) is written again and
the registry's audit log notes the import.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmkit.config import ProjectConfig
from slmkit.errors import DataError
from slmkit.monitor.queue import ITEM_PREFIX, VERDICTS, QueueItem, ReviewAnswer, queue_items, record_answers
from slmkit.monitor.requests import RequestLog, now
from slmkit.monitor.review_export import CSV_COLUMNS, exported_cells
from slmkit.monitor.reviewed import ReviewedSource, write_reviewed_source
from slmkit.registry import Registry
from slmkit.task import Task


@dataclass
class Filled:
    """One answer as read from a file, and where it was: `where` names the line or task."""

    where: str
    item_id: str
    verdict: str
    correction: Any = None  # as written: JSON text, or already a value
    note: str = ""
    reviewer: str | None = None
    cells: dict[str, str] = field(default_factory=dict)  # exported cells as they came back (CSV)


@dataclass
class ImportResult:
    file: Path
    recorded: Counter[str]
    unchanged: int
    skipped: int
    source: ReviewedSource

    def lines(self) -> list[str]:
        done = ", ".join(f"{n} {v}" for v, n in sorted(self.recorded.items())) or "none"
        return [
            f"{self.file}: recorded {sum(self.recorded.values())} answers ({done}); {self.unchanged} already "
            f"recorded as they are; {self.skipped} items without a verdict yet",
            self.source.line(),
        ]


def import_answers(
    config: ProjectConfig, log: RequestLog, registry: Registry, path: Path, *, reviewer: str | None = None
) -> ImportResult:
    """Check every answer in the file against the queue and the schema, then record them all (or none)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file", hint="pass the file the reviewers filled in")
    suffix = path.suffix.lower()
    readers = {".csv": _read_csv, ".json": _read_label_studio, ".jsonl": _read_jsonl}
    if suffix not in readers:
        raise DataError(
            f"{path}: cannot tell what this file is from '{suffix or '(no extension)'}'",
            hint="import queue.csv, a Label Studio JSON export (.json) or Argilla records (.jsonl)",
        )
    problems: list[str] = []
    filled = list(readers[suffix](path, problems))
    via = {".csv": "csv", ".json": "label-studio", ".jsonl": "jsonl"}[suffix] + f":{path.name}"
    task = Task.from_config(config)
    items = {i.id: i for i in queue_items(log)}
    answers: list[ReviewAnswer] = []
    unchanged, skipped = 0, 0
    seen: dict[str, str] = {}
    stamp = now()
    for entry in filled:
        if not str(entry.verdict or "").strip():
            skipped += 1  # not reviewed yet: a queue may be answered in parts
            continue
        if entry.item_id in seen:
            problems.append(f"{entry.where}: column id: {entry.item_id!r} is also answered at {seen[entry.item_id]}")
            continue
        seen[entry.item_id] = entry.where
        answer = check_answer(task, items, entry, problems)
        if answer is None:
            continue
        current = items[entry.item_id].current
        if current is not None and (current.verdict, current.correction, current.note) == answer:
            unchanged += 1
            continue
        who = reviewer or entry.reviewer or _default_reviewer()
        answers.append(ReviewAnswer(items[entry.item_id].request_id, *answer, who, stamp, via))
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise DataError(
            f"{path}: {len(problems)} problem(s); nothing was recorded\n{listed}",
            hint="fix each place named above and import again (export again with `slmkit review export --traffic`)",
        )
    record_answers(log, answers)
    recorded = Counter(a.verdict for a in answers)
    source = write_reviewed_source(config, log)
    if answers:
        registry.note(
            "traffic_review",
            config.task.name,
            {"file": path.name, "answers": dict(recorded), "reviewers": sorted({a.reviewer for a in answers})},
            actor=reviewer or answers[0].reviewer,
        )
    return ImportResult(path, recorded, unchanged, skipped, source)


def answer_item(
    config: ProjectConfig,
    log: RequestLog,
    registry: Registry,
    item_id: str,
    verdict: str,
    *,
    correction: Any = None,
    note: str = "",
    reviewer: str | None = None,
    via: str = "cli",
) -> ReviewAnswer:
    """Record one answer (the console, `slmkit review answer`), checked as an import checks it."""
    task = Task.from_config(config)
    items = {i.id: i for i in queue_items(log, ids={item_id.removeprefix(ITEM_PREFIX)})}
    problems: list[str] = []
    entry = Filled(item_id, item_id, verdict, correction, note)
    checked = check_answer(task, items, entry, problems, allow_served=False)
    if checked is None:
        raise DataError("; ".join(problems), hint="nothing was recorded")
    answer = ReviewAnswer(items[item_id].request_id, *checked, reviewer or _default_reviewer(), now(), via)
    record_answers(log, [answer])
    write_reviewed_source(config, log)
    registry.note(
        "traffic_review",
        config.task.name,
        {"item": item_id, "verdict": answer.verdict, "via": via},
        actor=answer.reviewer,
    )
    return answer


def check_answer(
    task: Task, items: dict[str, QueueItem], entry: Filled, problems: list[str], *, allow_served: bool = True
) -> tuple[str, Any, str] | None:
    """(verdict, correction, note) when the entry is a valid answer, else None with its problems added."""
    before = len(problems)
    item = items.get(entry.item_id)
    if item is None:
        problems.append(
            f"{entry.where}: column id: {entry.item_id!r} is not in the production review queue; restore the id "
            "or delete the row"
        )
        return None
    expected = exported_cells(item)
    for column, value in entry.cells.items():
        if _same(value) != _same(expected[column]):
            problems.append(
                f"{entry.where}: column {column}: differs from what was exported; put the exported text back "
                "(notes go in note)"
            )
    verdict = entry.verdict.strip().lower()
    if verdict not in VERDICTS:
        problems.append(f"{entry.where}: column verdict: {entry.verdict!r} is not one of accept, correct, reject")
        return None
    unreadable = len(problems)
    correction = _correction(entry, problems)
    if len(problems) > unreadable:
        return None  # the correction is not JSON: said once, nothing more to check in it
    served = _parsed(item.answer)
    if correction is not None and allow_served and verdict != "correct" and correction == served:
        correction = None  # the tools show the served answer in the correction box; left as it was, it says nothing
    if verdict == "correct":
        if correction is None:
            problems.append(f"{entry.where}: column correction: verdict correct needs the right answer as JSON")
        elif not isinstance(correction, dict):
            problems.append(f"{entry.where}: column correction: the right answer must be a JSON object")
        else:
            correction = task.canonical(correction)
            schema_problems = task.validate(correction)
            problems.extend(f"{entry.where}: column correction: {p}" for p in schema_problems)
            if not schema_problems and served is not None and correction == task.canonical(served):
                problems.append(f"{entry.where}: column correction: the same as the served answer; write accept")
    elif correction is not None:
        problems.append(
            f"{entry.where}: column correction: given with verdict {verdict}; write correct to record the right "
            "answer, or clear the correction"
        )
    if len(problems) > before:
        return None
    return verdict, correction, entry.note.strip()


def _correction(entry: Filled, problems: list[str]) -> Any:
    value = entry.correction
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        problems.append(
            f"{entry.where}: column correction: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno} of the "
            'cell); write the answer as the task answers, e.g. {"category": "billing", ...}'
        )
        return None


def _parsed(text: str | None) -> Any:
    try:
        return json.loads(text or "")
    except ValueError:
        return None


def _same(text: str | None) -> str:
    """Spreadsheets rewrite line ends and trailing spaces when saving; nothing else counts as the same."""
    return "\n".join(part.rstrip() for part in (text or "").replace("\r\n", "\n").split("\n")).strip()


def _default_reviewer() -> str:
    from slmkit.registry.records import default_actor

    return default_actor()


# --- the readers: each yields the answered entries, adding what it cannot read to `problems` -------------


def _read_csv(path: Path, problems: list[str]) -> Iterator[Filled]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"{path}:1: column(s) {', '.join(missing)} missing from the header",
                hint=f"keep the header the export wrote: {','.join(CSV_COLUMNS)}",
            )
        while True:
            line = reader.line_num + 1  # where this row starts (a quoted cell may span lines)
            try:
                row = next(reader)
            except StopIteration:
                return
            yield Filled(
                f"{path}:{line}",
                (row.get("id") or "").strip(),
                row.get("verdict") or "",
                row.get("correction"),
                row.get("note") or "",
                cells={"input": row.get("input") or "", "answer": row.get("answer") or ""},
            )


def _read_label_studio(path: Path, problems: list[str]) -> Iterator[Filled]:
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{path}: not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
            hint="import the file Label Studio exported (Export -> JSON)",
        ) from None
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list):
        raise DataError(f"{path}: a Label Studio export is a JSON list of tasks", hint="export it again as JSON")
    for number, task in enumerate(tasks, start=1):
        data = task.get("data") if isinstance(task, dict) else None
        item_id = str((data or {}).get("slmkit_id", ""))
        where = f"{path}: task {number}" + (f" ({item_id})" if item_id else "")
        if not item_id:
            problems.append(f"{where}: column data.slmkit_id: missing; import only tasks slmkit exported")
            continue
        done = [a for a in task.get("annotations") or [] if isinstance(a, dict) and not a.get("was_cancelled")]
        if not done:
            yield Filled(where, item_id, "")
            continue
        annotation = done[-1]
        values: dict[str, Any] = {}
        for result in annotation.get("result") or []:
            value = result.get("value") or {}
            if result.get("from_name") == "verdict":
                values["verdict"] = (value.get("choices") or [""])[0]
            elif result.get("from_name") in ("correction", "note"):
                values[result["from_name"]] = "\n".join(value.get("text") or [])
        if "verdict" not in values:
            problems.append(f"{where}: column annotations.result.verdict: the annotation has no verdict choice")
            continue
        who = annotation.get("completed_by")
        if isinstance(who, dict):
            who = who.get("email") or who.get("id")
        yield Filled(
            where,
            item_id,
            values["verdict"],
            values.get("correction"),
            values.get("note", ""),
            reviewer=f"label-studio:{who}" if who is not None else None,
        )


def _read_jsonl(path: Path, problems: list[str]) -> Iterator[Filled]:
    with path.open(encoding="utf-8") as fh:
        for number, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(text)
            except json.JSONDecodeError as exc:
                problems.append(f"{where}: column {exc.colno}: not JSON ({exc.msg}); one record per line")
                continue
            if not isinstance(record, dict) or not record.get("id"):
                problems.append(f"{where}: column id: missing; import only records slmkit exported")
                continue
            values, reviewer = _argilla_values(record)
            yield Filled(
                where,
                str(record["id"]),
                str(values.get("verdict") or ""),
                values.get("correction"),
                str(values.get("note") or ""),
                reviewer,
            )


def _argilla_values(record: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """verdict, correction and note from an Argilla record (nested or flat responses) or a plain line."""
    names = ("verdict", "correction", "note")
    nested = record.get("responses")
    if not isinstance(nested, dict) and not any(f"{n}.responses" in record for n in names):
        # A plain line {"id", "verdict", "correction", "note"}. In an exported record, `correction` is
        # only the suggested (served) answer until a verdict is given.
        return ({n: record[n] for n in names if n in record} if record.get("verdict") else {}), None
    values: dict[str, Any] = {}
    reviewer = None
    for name in names:
        responses = nested.get(name) if isinstance(nested, dict) else record.get(f"{name}.responses")
        if not isinstance(responses, list) or not responses:
            continue
        last = responses[-1]
        values[name] = last.get("value") if isinstance(last, dict) else last
        user = last.get("user_id") if isinstance(last, dict) else None
        users = record.get(f"{name}.responses.users")
        user = user or (users[-1] if isinstance(users, list) and users else None)
        if user and name == "verdict":
            reviewer = f"argilla:{user}"
    return values, reviewer
