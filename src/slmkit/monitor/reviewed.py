"""Reviewed production requests as a data source: .slmkit/reviewed.jsonl, which `data build` reads.

Every queued request whose current answer is accept or correct becomes one JSONL row: the
task's input fields (from the captured record, already PII-redacted), `output` (the answer as
served when accepted, the reviewer's correction when corrected), and its provenance: `id`
`requests.db#<request id>`, `reviewer`, `reviewed_at`, `answered_by` (the release that answered)
and `tags` (`production`, `stratum:<name>`). A rejected answer teaches nothing (the right answer
is unknown), so it is counted, not written. The build reads the file with `data.reviewed`
(slmkit.data.build): PII removal, validation, dedup and gold-leak removal apply as to any source.

The file is rewritten whole from requests.db after every import or answer (temp + rename), rows
in request-id order: the same answers give the same bytes, so the same dataset version.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmkit import atomic
from slmkit.config import REVIEWED_SOURCE, ProjectConfig
from slmkit.monitor.queue import QueueItem, queue_items
from slmkit.monitor.requests import RequestLog
from slmkit.task import Task


@dataclass
class ReviewedSource:
    path: Path
    rows: int
    by_stratum: dict[str, int] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)  # reason -> items answered but not written

    def line(self) -> str:
        strata = ", ".join(f"{n} {s}" for s, n in sorted(self.by_stratum.items()))
        out = ", ".join(f"{n} {why}" for why, n in sorted(self.left_out.items()))
        where = REVIEWED_SOURCE if self.rows else f"no {REVIEWED_SOURCE}"
        return f"{where}: {self.rows} reviewed rows ({strata or 'none'})" + (f"; not written: {out}" if out else "")


def write_reviewed_source(config: ProjectConfig, log: RequestLog) -> ReviewedSource:
    """Rewrite the reviewed-items source from the answers in requests.db; removed when it has no rows."""
    task = Task.from_config(config)
    path = config.resolve_path(REVIEWED_SOURCE)
    lines: list[str] = []
    strata: Counter[str] = Counter()
    left_out: Counter[str] = Counter()
    for item in sorted(queue_items(log), key=lambda i: i.request_id):
        row, why = reviewed_row(task, item)
        if row is None:
            if why:
                left_out[why] += 1
            continue
        lines.append(json.dumps(row, ensure_ascii=False, sort_keys=True))
        strata[item.stratum] += 1
    if lines:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(path, "\n".join(lines) + "\n")
    elif path.exists():
        path.unlink()  # an empty source is an error to the build; no rows, no source
    return ReviewedSource(path, len(lines), dict(strata), dict(left_out))


def reviewed_row(task: Task, item: QueueItem) -> tuple[dict[str, Any] | None, str]:
    """The training row of an answered item, or (None, why not); (None, "") when it is not answered."""
    answer = item.current
    if answer is None:
        return None, ""
    if answer.verdict == "reject":
        return None, "rejected (no right answer given)"
    if len(item.user_turns) != 1:
        return None, "multi-turn requests (not trained on)"
    fields = input_fields(task, item.input)
    if fields is None:
        return None, "inputs that are not a record of the task's input fields"
    if answer.verdict == "correct":
        output = answer.correction
    else:
        try:
            output = json.loads(item.answer or "")
        except ValueError:
            return None, "accepted answers that are not JSON"
    return (
        {
            **fields,
            "id": item.id,
            "output": output,
            "tags": ["production", f"stratum:{item.stratum}"],
            "reviewer": answer.reviewer,
            "reviewed_at": answer.answered_at,
            "verdict": answer.verdict,
            "answered_by": item.release,
        },
        "",
    )


def input_fields(task: Task, value: Any) -> dict[str, Any] | None:
    """The task's input fields from a captured user turn: a JSON record, or text for a one-field task."""
    names = task.cfg.input_fields
    if isinstance(value, dict):
        if not any(name in value for name in names):
            return None
        return {name: value.get(name) for name in names}
    if isinstance(value, str) and len(names) == 1:
        return {names[0]: value}
    return None
