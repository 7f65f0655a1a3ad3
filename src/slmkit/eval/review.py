"""`slmkit review export`: the gold items a person should look at, each with why.

An item goes to review when the adapter's answer disagrees with the gold answer, is a refusal,
was given with low confidence (eval.review.min_confidence, eval.review.lowest_share; see
slmkit.eval.confidence), or its gold row carries a tag (data.sources[].tags_field). Written:
review.csv (a reviewer fills `verdict` and `note`), review.html (the same, to read), and
review.json (what was exported from which report; `slmkit review import` checks against it).
Everything comes from the eval report, whose gold rows the data stage already scrubbed of PII.
"""

from __future__ import annotations

import csv
import hashlib
import html
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slmkit.config import ProjectConfig, ReviewConfig
from slmkit.errors import RegistryError, StageError
from slmkit.registry import Registry
from slmkit.task import Task

CSV_COLUMNS = ("id", "input", "gold", "answer", "reasons", "confidence", "verdict", "note")
REASONS = {
    "disagreement": "the answer differs from the gold answer",
    "refusal": "the answer is the task's refusal (or carries its label)",
    "low_confidence": "the model gave its least certain token a low probability",
    "tag:<name>": "the gold row is tagged so in the data",
}
SIDE = "adapter"  # what gets released is what gets reviewed


@dataclass(frozen=True)
class ReviewItem:
    id: str
    input: str
    gold: str  # compact JSON of the gold output
    answer: str
    reasons: tuple[str, ...]
    confidence: float | None

    def csv_row(self) -> dict[str, str]:
        shown = "" if self.confidence is None else f"{self.confidence:.4f}"
        return {
            "id": self.id,
            "input": self.input,
            "gold": self.gold,
            "answer": self.answer,
            "reasons": "; ".join(self.reasons),
            "confidence": shown,
            "verdict": "",
            "note": "",
        }


@dataclass(frozen=True)
class ReportSource:
    """An eval report and where it came from: a release (ref) or only a training run."""

    report: dict[str, Any]
    digest: str
    release: str | None


@dataclass(frozen=True)
class ReviewExport:
    out_dir: Path
    items: list[ReviewItem]
    candidates: int  # items that had a reason, before --limit
    source: ReportSource

    def summary_lines(self) -> list[str]:
        where = self.source.release or f"run {self.source.report.get('run_id')}"
        counts: dict[str, int] = {}
        for item in self.items:
            for reason in item.reasons:
                counts[reason] = counts.get(reason, 0) + 1
        left = self.candidates - len(self.items)
        lines = [
            f"{len(self.items)} of {self.source.report.get('items', '?')} gold items to review ({where})"
            + (f"; {left} more left out by --limit" if left else ""),
            *(f"  {reason:<18}{n}" for reason, n in sorted(counts.items())),
            f"wrote {self.out_dir / 'review.csv'} and {self.out_dir / 'review.html'}",
            "next: fill the verdict column (ok, wrong or unsure), then `slmkit review import review.csv`",
        ]
        return lines


def select_for_review(report: dict[str, Any], task: Task, settings: ReviewConfig) -> list[ReviewItem]:
    """Every item of the report with at least one reason, most reasons first, then least confident."""
    predictions = report["predictions"]
    confidences = [p.get(SIDE, {}).get("confidence") for p in predictions]
    known = sorted(c for c in confidences if c is not None)
    lowest = -math.inf  # the confidence of the last item inside eval.review.lowest_share
    if known and settings.lowest_share > 0:
        lowest = known[max(math.ceil(settings.lowest_share * len(known)) - 1, 0)]
    refusal = task.refusal_output
    label = task.cfg.label_field
    items = []
    for p, conf in zip(predictions, confidences, strict=True):
        answer = p.get(SIDE, {})
        value = task.parse(answer.get("text", "")).value
        reasons = []
        if not answer.get("exact"):
            reasons.append("disagreement")
        if task.is_refusal(value) or (
            refusal and label and isinstance(value, dict) and label in value and value[label] == refusal.get(label)
        ):
            reasons.append("refusal")
        if conf is not None and (conf < settings.min_confidence or conf <= lowest):
            reasons.append("low_confidence")
        reasons += [f"tag:{t}" for t in p.get("tags", []) if not settings.tags or t in settings.tags]
        if reasons:
            gold = json.dumps(p["gold"], ensure_ascii=False)
            items.append(ReviewItem(str(p["id"]), p["input"], gold, answer.get("text", ""), tuple(reasons), conf))
    return sorted(items, key=lambda i: (-len(i.reasons), math.inf if i.confidence is None else i.confidence))


def export_review(
    source: ReportSource, task: Task, settings: ReviewConfig, out_dir: Path, *, limit: int | None = None
) -> ReviewExport:
    """Write review.csv, review.html and review.json (last: its presence means the export is whole)."""
    candidates = select_for_review(source.report, task, settings)
    items = candidates[:limit] if limit else candidates
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / "review.csv"
    with csv_path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(item.csv_row() for item in items)
    write_review_html(items, source, out_dir / "review.html")
    manifest = {
        "kind": "slmkit.review_export",
        "task": task.name,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "report_digest": source.digest,
        "run_id": source.report.get("run_id"),
        "release": source.release,
        "settings": settings.model_dump(),
        "csv_sha256": hashlib.sha256(csv_path.read_bytes()).hexdigest(),
        "items": [{"id": i.id, "reasons": list(i.reasons)} for i in items],
    }
    tmp = out_dir / "review.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    tmp.replace(out_dir / "review.json")
    return ReviewExport(out_dir, items, len(candidates), source)


# The static review pages' style (this one and the production queue's, slmkit.monitor.review_export).
PAGE_STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}pre{white-space:pre-wrap;margin:0;max-width:40em}.r{white-space:nowrap}
"""


def write_review_html(items: list[ReviewItem], source: ReportSource, path: Path) -> None:
    """The review queue as one self-contained page (no scripts); every value HTML-escaped."""
    e = html.escape
    where = source.release or f"run {source.report.get('run_id', '?')}"
    parts = [
        f"<!doctype html><meta charset=utf-8><title>slmkit review: {e(str(source.report.get('task', '')))}</title>",
        f"<style>{PAGE_STYLE}</style><h1>Review: {e(str(source.report.get('task', '')))} ({e(where)})</h1>",
        f"<p>{len(items)} items · eval report <code>{e(source.digest[:16])}</code> · "
        "write ok, wrong or unsure in the <code>verdict</code> column of review.csv</p>",
        "<table><tr><th>id</th><th>reasons</th><th>confidence</th><th>input</th><th>gold</th><th>answer</th></tr>",
    ]
    for item in items:
        conf = "–" if item.confidence is None else f"{item.confidence:.3f}"
        parts.append(
            f"<tr class=item><td>{e(item.id)}</td><td class=r>{'<br>'.join(e(r) for r in item.reasons)}</td>"
            f"<td>{conf}</td><td><pre>{e(item.input)}</pre></td><td><pre>{e(item.gold)}</pre></td>"
            f"<td><pre>{e(item.answer)}</pre></td></tr>"
        )
    parts.append("</table>")
    path.write_text("\n".join(parts), encoding="utf-8")


def find_report(config: ProjectConfig, registry: Registry, ref: str | None) -> ReportSource:
    """The eval report of a release (`3`, `v3`, an alias, `name@3`), or of a training run by id.

    Without `ref`: the release behind release.alias, else the latest run's latest evaluation.
    """
    name = config.task.name
    if ref is None and registry.current(name, config.release.alias) is None:
        run_id = registry.get_run(task=name).run_id
        return _run_report(registry, run_id)
    if ref is not None and not _names_release(ref, name, registry.aliases(name)):
        return _run_report(registry, registry.get_run(ref).run_id)
    full = f"{name}@{config.release.alias}" if ref is None else ref if "@" in ref or ref == name else f"{name}@{ref}"
    release = registry.resolve(full)
    return ReportSource(_stored_report(registry, release.eval_report_digest), release.eval_report_digest, release.ref)


def _names_release(ref: str, name: str, aliases: dict[str, int]) -> bool:
    return "@" in ref or ref == name or ref in aliases or ref.removeprefix("v").isdigit()


def recorded_task(config: ProjectConfig, registry: Registry, run_id: str | None) -> Task:
    """The task spec the run trained with (its refusal output, its label), as evaluation used it."""
    try:
        recorded = registry.get_run(run_id).config if run_id else None
    except RegistryError:
        recorded = None
    if not recorded:
        return Task.from_config(config)
    trained = ProjectConfig.model_validate({k: v for k, v in recorded.items() if not k.startswith("_")})
    return Task(trained.task, trained.task.output_schema or config.output_schema())


def _run_report(registry: Registry, run_id: str) -> ReportSource:
    record = registry.latest_eval(run_id)
    if record is None:
        raise StageError(f"run {run_id} has no evaluation to review", hint=f"run `slmkit eval --run {run_id}` first")
    return ReportSource(_stored_report(registry, record.digest), record.digest, None)


def _stored_report(registry: Registry, digest: str) -> dict[str, Any]:
    if not registry.store.exists(digest):
        raise StageError(
            f"the eval report {digest[:12]} is not in the store",
            hint="`slmkit registry verify` names what is missing; evaluate the run again",
        )
    report: dict[str, Any] = json.loads(registry.store.path(digest).read_text(encoding="utf-8"))
    if "predictions" not in report:
        raise StageError(f"the eval report {digest[:12]} holds no per-item predictions", hint="evaluate again")
    return report
