"""A release's review signed off: from a filled-in review.csv (`slmkit review import`) or from the
verdicts recorded item by item (`slmkit review signoff`, the console), recorded as "review" evidence.

The file must be the review.csv that `slmkit review export` wrote, with only `verdict` (ok,
wrong or unsure, any case) and `note` filled in: every problem is reported at once with its
line, column and fix. The sign-off passes when the share of "wrong" verdicts is at most
eval.review.max_wrong_share; `slmkit check` then shows the review item as pass or fail.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmkit.config import ProjectConfig
from slmkit.errors import DataError, RegistryError
from slmkit.eval.review import CSV_COLUMNS, SIDE, find_report
from slmkit.eval.verdicts import AS_SIGNOFF, review_queue
from slmkit.registry import Registry
from slmkit.registry.records import Release, default_actor

VERDICTS = ("ok", "wrong", "unsure")
LOCKED_COLUMNS = ("input", "gold", "answer")  # what the verdict is about: must be as exported


@dataclass(frozen=True)
class Signoff:
    release: str
    passed: bool
    counts: dict[str, int]
    summary: str

    def lines(self) -> list[str]:
        return [f"{self.release}: review {'PASSED' if self.passed else 'FAILED'}: {self.summary}"]


def import_review(
    config: ProjectConfig,
    registry: Registry,
    csv_path: Path,
    *,
    release_ref: str | None = None,
    reviewer: str | None = None,
) -> Signoff:
    """Validate the filled-in review.csv against its export and record the sign-off on the release."""
    manifest = _manifest(csv_path)
    release = _release(config, registry, manifest, release_ref)
    report = find_report(config, registry, release.ref).report
    verdicts = read_verdicts(csv_path, manifest, report)
    source = {
        "file": csv_path.name,
        "file_sha256": hashlib.sha256(csv_path.read_bytes()).hexdigest(),
        "report_digest": manifest["report_digest"],
        "exported_at": manifest.get("created_at"),
    }
    return _record_signoff(config, registry, release, verdicts, reviewer or default_actor(), source)


def sign_off(
    config: ProjectConfig, registry: Registry, ref: str | None = None, *, reviewer: str | None = None
) -> Signoff:
    """Sign a release's review off from the verdicts recorded item by item (console, `review answer`).

    Every item of the release's queue needs a verdict first; DataError names how many do not.
    """
    queue = review_queue(config, registry, ref)
    missing = queue.unanswered
    if missing:
        shown = ", ".join(i.id for i in missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(
            f"{queue.release.ref}: {len(missing)} of {len(queue.items)} review items have no verdict yet ({shown})",
            hint="answer every item (accept, correct or reject), then sign off; nothing was recorded",
        )
    verdicts = {
        item.id: (AS_SIGNOFF[queue.verdicts[item.id].verdict], queue.verdicts[item.id].note) for item in queue.items
    }
    answers = Counter(queue.verdicts[item.id].verdict for item in queue.items)
    source = {
        "report_digest": queue.report_digest,
        "verdicts": {v: answers[v] for v in ("accept", "correct", "reject")},
        "corrected": {i.id: v.correction for i in queue.items if (v := queue.verdicts[i.id]).correction is not None},
    }
    return _record_signoff(config, registry, queue.release, verdicts, reviewer or default_actor(), source)


def _record_signoff(
    config: ProjectConfig,
    registry: Registry,
    release: Release,
    verdicts: dict[str, tuple[str, str]],
    reviewer: str,
    source: dict[str, Any],
) -> Signoff:
    """Judge the verdicts against eval.review.max_wrong_share and record them as "review" evidence."""
    counts = Counter(verdict for verdict, _ in verdicts.values())
    total = len(verdicts)
    wrong_share = counts["wrong"] / total if total else 0.0
    allowed = config.eval.review.max_wrong_share
    passed = wrong_share <= allowed
    summary = (
        f"{total} items reviewed by {reviewer}: {counts['ok']} ok, {counts['wrong']} wrong, {counts['unsure']} unsure"
        + ("" if passed else f"; wrong share {wrong_share:.2f} is over eval.review.max_wrong_share {allowed}")
    )
    registry.record_evidence(
        release.name,
        release.version,
        "review",
        passed=passed,
        detail={
            "summary": summary,
            "reviewer": reviewer,
            "items": total,
            "counts": {v: counts[v] for v in VERDICTS},
            "wrong": [i for i, (v, _) in verdicts.items() if v == "wrong"],
            "unsure": [i for i, (v, _) in verdicts.items() if v == "unsure"],
            "notes": {i: note for i, (_, note) in verdicts.items() if note},
            "max_wrong_share": allowed,
            **source,
        },
        actor=reviewer,
    )
    return Signoff(release.ref, passed, {v: counts[v] for v in VERDICTS}, summary)


def read_verdicts(csv_path: Path, manifest: dict[str, Any], report: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """id -> (verdict, note) for every exported item; DataError listing each problem with its line and column."""
    exported = {item["id"] for item in manifest["items"]}
    shown = {str(p["id"]): p for p in report["predictions"] if str(p["id"]) in exported}
    problems: list[str] = []
    verdicts: dict[str, tuple[str, str]] = {}
    first_line: dict[str, int] = {}
    with csv_path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(
                f"{csv_path}:1: column(s) {', '.join(missing)} missing from the header",
                hint=f"keep the header review export wrote: {','.join(CSV_COLUMNS)}",
            )
        while True:
            line = reader.line_num + 1  # where this row starts (a quoted cell may span lines)
            try:
                row = next(reader)
            except StopIteration:
                break

            def problem(column: str, what: str, at: int = line) -> None:
                problems.append(f"{csv_path}:{at}: column {column}: {what}")

            item_id = (row.get("id") or "").strip()
            if item_id not in exported:
                problem("id", f"{item_id!r} was not exported for review; restore the id or delete the row")
                continue
            if item_id in first_line:
                problem("id", f"{item_id!r} is also on line {first_line[item_id]}; keep one row per id")
                continue
            first_line[item_id] = line
            expected = _exported_cells(shown[item_id])
            for column in LOCKED_COLUMNS:
                if _same(row.get(column)) != _same(expected[column]):
                    problem(column, "differs from what was exported; put the exported text back (notes go in note)")
            verdict = (row.get("verdict") or "").strip().lower()
            if not verdict:
                problem("verdict", "empty; write ok, wrong or unsure")
            elif verdict not in VERDICTS:
                problem("verdict", f"{row.get('verdict')!r} is not a verdict; write ok, wrong or unsure")
            else:
                verdicts[item_id] = (verdict, (row.get("note") or "").strip())
    for item_id in sorted(exported - set(first_line)):
        problems.append(f"{csv_path}: id {item_id!r} was exported but has no row; put its row back and fill verdict")
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise DataError(
            f"{csv_path}: {len(problems)} problem(s); nothing was recorded\n{listed}",
            hint="fix each line named above (or export again with `slmkit review export`) and import again",
        )
    return verdicts


def _exported_cells(prediction: dict[str, Any]) -> dict[str, str]:
    return {
        "input": prediction["input"],
        "gold": json.dumps(prediction["gold"], ensure_ascii=False),
        "answer": prediction.get(SIDE, {}).get("text", ""),
    }


def _same(text: str | None) -> str:
    """Spreadsheets rewrite line ends and trailing spaces when saving; nothing else counts as the same."""
    return "\n".join(part.rstrip() for part in (text or "").replace("\r\n", "\n").split("\n")).strip()


def _manifest(csv_path: Path) -> dict[str, Any]:
    path = csv_path.parent / "review.json"
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: no such file", hint="pass the review.csv that `slmkit review export` wrote")
    if not path.is_file():
        raise DataError(
            f"{csv_path}: no review.json beside it, so what was exported cannot be checked",
            hint="keep review.csv in the folder `slmkit review export` wrote it to (with review.json)",
        )
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _release(config: ProjectConfig, registry: Registry, manifest: dict[str, Any], ref: str | None) -> Release:
    """The release the review is about: --release, else the one exported, else the one made from its report."""
    name = config.task.name
    ref = ref or manifest.get("release")
    if ref is not None:
        release = registry.resolve(ref if "@" in ref or ref == name else f"{name}@{ref}")
    else:
        made = [r for r in registry.list_releases(name) if r.eval_report_digest == manifest["report_digest"]]
        if not made:
            raise RegistryError(
                "no release was made from the eval report this review was exported from "
                f"(run {manifest.get('run_id')})",
                hint="release the run (`slmkit release`) and import again, or pass --release",
            )
        release = made[-1]
    if release.eval_report_digest != manifest["report_digest"]:
        raise RegistryError(
            f"{release.ref} was released from another eval report than the one reviewed "
            f"({release.eval_report_digest[:12]}, not {manifest['report_digest'][:12]})",
            hint=f"export its items with `slmkit review export {release.version}`, review them and import that file",
        )
    return release
