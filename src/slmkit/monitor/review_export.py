"""`slmkit review export --traffic`: the open production review items, in the files reviewers use.

Written into one folder, the manifest last (its presence means the export is whole):
- queue.csv: one row per item; a reviewer fills `verdict` (accept, correct or reject), the
  right answer as JSON in `correction` when the verdict is correct, and `note`;
- queue.html: the same items to read (self-contained, no scripts, every value escaped);
- label-studio.json + label-studio.xml: tasks for Label Studio's importer (a JSON list: its
  importer reads `.json`, not JSON lines) with the served answer as a prediction to edit, and the
  labeling config that shows them (Choices `verdict`, TextArea `correction` and `note`);
- argilla.jsonl: one record per line for Argilla's `dataset.records.log` (fields `input` and
  `answer`, the served answer suggested for the `correction` question, metadata `stratum`,
  `confidence`, `release`), and argilla-settings.json naming the dataset settings it expects;
- queue.json: the manifest (the items, why each was drawn, when).
`slmkit review import` reads any of them back (slmkit.monitor.review_import).
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slmkit import atomic
from slmkit.eval.review import PAGE_STYLE
from slmkit.monitor.queue import VERDICTS, QueueItem

CSV_COLUMNS = ("id", "stratum", "release", "confidence", "input", "answer", "verdict", "correction", "note")
FORMATS = ("csv", "html", "label-studio", "argilla")
MANIFEST = "queue.json"
STRATUM_WHY = {
    "random": "drawn at random (estimates production accuracy)",
    "low_confidence": "one of the least confident answers",
    "flagged": "input unlike the training inputs (drift)",
    "refused": "a refusal or an escalation",
}


@dataclass(frozen=True)
class TrafficExport:
    out_dir: Path
    items: int
    files: list[Path]

    def lines(self) -> list[str]:
        names = ", ".join(p.name for p in self.files)
        return [
            f"{self.items} open production review items written to {self.out_dir}: {names}",
            "next: fill verdict (accept, correct or reject) and, for correct, the right answer as JSON in "
            "correction; then `slmkit review import FILE` (queue.csv, a Label Studio JSON export, or Argilla JSONL)",
        ]


def export_items(
    task_name: str, items: list[QueueItem], out_dir: Path, formats: tuple[str, ...] = FORMATS
) -> TrafficExport:
    """Write the items in each format, then queue.json."""
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    if "csv" in formats:
        files.append(_write_csv(items, out_dir / "queue.csv"))
    if "html" in formats:
        files.append(_write_html(task_name, items, out_dir / "queue.html"))
    if "label-studio" in formats:
        files += _write_label_studio(items, out_dir)
    if "argilla" in formats:
        files += _write_argilla(items, out_dir)
    manifest = {
        "kind": "slmkit.traffic_review_export",
        "task": task_name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in files},
        "items": [{"id": i.id, "stratum": i.stratum, "release": i.release, "batch": i.batch} for i in items],
    }
    atomic.write_json(out_dir / MANIFEST, manifest, ensure_ascii=False)
    return TrafficExport(out_dir, len(items), [*files, out_dir / MANIFEST])


def exported_cells(item: QueueItem) -> dict[str, str]:
    """The cells a reviewer reads and must leave as they are (the import checks them)."""
    return {"input": item.input_text(), "answer": item.answer or ""}


def _write_csv(items: list[QueueItem], path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for item in items:
            writer.writerow(
                {
                    "id": item.id,
                    "stratum": item.stratum,
                    "release": item.release or "",
                    "confidence": "" if item.confidence is None else f"{item.confidence:.4f}",
                    **exported_cells(item),
                    "verdict": "",
                    "correction": "",
                    "note": "",
                }
            )
    tmp.replace(path)
    return path


def _write_html(task_name: str, items: list[QueueItem], path: Path) -> Path:
    e = html.escape
    parts = [
        f"<!doctype html><meta charset=utf-8><title>slmkit production review: {e(task_name)}</title>",
        f"<style>{PAGE_STYLE}</style><h1>Production review: {e(task_name)}</h1>",
        f"<p>{len(items)} open items · PII was replaced before capture · write accept, correct (with the right "
        "answer as JSON) or reject in the <code>verdict</code> column of queue.csv</p>",
        "<table><tr><th>id</th><th>why</th><th>release</th><th>confidence</th><th>input</th><th>answer</th></tr>",
    ]
    for item in items:
        conf = "–" if item.confidence is None else f"{item.confidence:.3f}"
        cells = exported_cells(item)
        parts.append(
            f"<tr class=item><td>{e(item.id)}</td><td class=r>{e(STRATUM_WHY[item.stratum])}</td>"
            f"<td class=r>{e(item.release or '')}</td><td>{conf}</td><td><pre>{e(cells['input'])}</pre></td>"
            f"<td><pre>{e(cells['answer'])}</pre></td></tr>"
        )
    parts.append("</table>")
    atomic.write_text(path, "\n".join(parts))
    return path


LABEL_STUDIO_CONFIG = """<View>
  <Header value="$why"/>
  <Text name="input" value="$input"/>
  <Header value="Answer served by $release (confidence $confidence)"/>
  <Text name="answer" value="$answer"/>
  <Choices name="verdict" toName="answer" choice="single" required="true">
    <Choice value="accept"/>
    <Choice value="correct"/>
    <Choice value="reject"/>
  </Choices>
  <Header value="The right answer, as JSON (for correct):"/>
  <TextArea name="correction" toName="answer" editable="true" maxSubmissions="1"/>
  <TextArea name="note" toName="answer" placeholder="why (optional)" maxSubmissions="1"/>
</View>
"""


def _write_label_studio(items: list[QueueItem], out_dir: Path) -> list[Path]:
    tasks = []
    for item in items:
        cells = exported_cells(item)
        data: dict[str, Any] = {
            "slmkit_id": item.id,
            "why": STRATUM_WHY[item.stratum],
            "stratum": item.stratum,
            "release": item.release or "",
            "confidence": "" if item.confidence is None else round(item.confidence, 4),
            **cells,
        }
        # The served answer, ready to edit into a correction.
        prediction: dict[str, Any] = {
            "model_version": item.release or "",
            "result": [
                {
                    "from_name": "correction",
                    "to_name": "answer",
                    "type": "textarea",
                    "value": {"text": [cells["answer"]]},
                }
            ],
        }
        if item.confidence is not None:
            prediction["score"] = round(item.confidence, 4)
        tasks.append({"data": data, "predictions": [prediction]})
    tasks_path, config_path = out_dir / "label-studio.json", out_dir / "label-studio.xml"
    atomic.write_json(tasks_path, tasks, ensure_ascii=False)
    atomic.write_text(config_path, LABEL_STUDIO_CONFIG)
    return [tasks_path, config_path]


ARGILLA_SETTINGS: dict[str, Any] = {
    "guidelines": "Judge the answer the model served: accept it, correct it (the right answer as JSON) or reject it.",
    "fields": [{"name": "input", "type": "text"}, {"name": "answer", "type": "text"}],
    "questions": [
        {"name": "verdict", "type": "label_selection", "labels": list(VERDICTS), "required": True},
        {"name": "correction", "type": "text", "required": False},
        {"name": "note", "type": "text", "required": False},
    ],
    "metadata": [
        {"name": "stratum", "type": "terms"},
        {"name": "release", "type": "terms"},
        {"name": "confidence", "type": "float"},
    ],
}


def _write_argilla(items: list[QueueItem], out_dir: Path) -> list[Path]:
    lines = []
    for item in items:
        cells = exported_cells(item)
        record: dict[str, Any] = {
            "id": item.id,
            **cells,
            "correction": cells["answer"],  # a suggestion for the correction question: the served answer
            "stratum": item.stratum,
            "release": item.release or "",
        }
        if item.confidence is not None:
            record["confidence"] = round(item.confidence, 4)
        lines.append(json.dumps(record, ensure_ascii=False))
    records, settings = out_dir / "argilla.jsonl", out_dir / "argilla-settings.json"
    atomic.write_text(records, "\n".join(lines) + ("\n" if lines else ""))
    atomic.write_json(settings, ARGILLA_SETTINGS)
    return [records, settings]
