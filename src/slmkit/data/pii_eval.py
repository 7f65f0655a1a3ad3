"""How well the PII scrubber does on text with labelled spans: recall and precision per kind.

Shared by `bench/pii_presidio.py` and the regression test, so both score the same way:

- recall of a kind: gold spans of that kind overlapped by a predicted span of the same kind;
- any-kind recall: gold spans overlapped by any predicted span (what matters for privacy: the
  text is gone, whatever it was called);
- precision of a kind: predicted spans overlapping a gold span of that kind, among predictions
  that are not `neutral`. A prediction that overlaps only gold of a type slmkit does not scrub
  (a ZIP code, a domain name) is neutral: neither right nor wrong.

Labelled data often cuts one address into pieces (house number, street, unit); gold spans of
one type separated only by spaces and commas are merged before scoring.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmkit.config import PII_ENTITIES
from slmkit.errors import DataError

# Presidio research entity names -> slmkit kinds; the other Presidio types are not scrubbed.
PRESIDIO_KINDS = {
    "EMAIL_ADDRESS": "EMAIL",
    "PHONE_NUMBER": "PHONE",
    "CREDIT_CARD": "CARD",
    "IBAN_CODE": "IBAN",
    "US_SSN": "SSN",
    "IP_ADDRESS": "IP",
    "STREET_ADDRESS": "ADDRESS",
    "PERSON": "NAME",
}


@dataclass(frozen=True)
class LabelledText:
    """A text and its gold spans `(start, end, type)`; a type is a slmkit kind or a foreign label."""

    text: str
    spans: tuple[tuple[int, int, str], ...]


def merge_adjacent(
    text: str, spans: Iterable[tuple[int, int, str]], kinds: frozenset[str] = frozenset({"ADDRESS"})
) -> list[tuple[int, int, str]]:
    """Join spans of one of `kinds` (and of one type) that only spaces and commas separate."""
    merged: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(spans):
        if merged:
            s, e, k = merged[-1]
            if k == kind and kind in kinds and e <= start and not text[e:start].strip(" \t\n,"):
                merged[-1] = (s, end, kind)
                continue
        merged.append((start, end, kind))
    return merged


def load_presidio(folder: Path) -> list[LabelledText]:
    """Rows of `train.jsonl` (the text is "input") with the spans of `spans_train.jsonl`, types mapped."""
    texts_path, spans_path = folder / "train.jsonl", folder / "spans_train.jsonl"
    if not texts_path.is_file() or not spans_path.is_file():
        raise DataError(f"{folder}: no train.jsonl and spans_train.jsonl", hint="point at the presidio_pii folder")
    rows = []
    with texts_path.open(encoding="utf-8") as texts, spans_path.open(encoding="utf-8") as labels:
        for line_no, (text_line, span_line) in enumerate(zip(texts, labels, strict=True), 1):
            try:
                text = json.loads(text_line)["input"]
                spans = [(int(s), int(e), PRESIDIO_KINDS.get(t, t)) for s, e, t in json.loads(span_line)["spans"]]
            except (ValueError, KeyError, TypeError) as exc:
                raise DataError(f"{folder}: line {line_no} cannot be read: {exc}") from exc
            rows.append(LabelledText(text, tuple(merge_adjacent(text, spans))))
    return rows


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def evaluate_pii(scrubber: Any, rows: Iterable[LabelledText], *, examples: int = 0) -> dict[str, Any]:
    """Per-kind gold / predicted / recall / precision over `rows`, plus how foreign types were covered.

    `scrubber` is anything with `find(text) -> list[PiiSpan]`. With `examples` > 0, up to that
    many missed gold spans and wrong predictions per kind are listed (for reading, not scoring).
    """
    kinds: dict[str, dict[str, Any]] = {
        k: {"gold": 0, "found": 0, "covered": 0, "predicted": 0, "correct": 0, "neutral": 0, "misses": [], "wrong": []}
        for k in PII_ENTITIES
    }
    foreign: dict[str, dict[str, int]] = {}
    n_rows, seconds = 0, 0.0
    for row in rows:
        n_rows += 1
        began = time.perf_counter()
        predicted = scrubber.find(row.text)
        seconds += time.perf_counter() - began
        for start, end, kind in row.spans:
            hit_same = any(p.kind == kind and _overlaps((p.start, p.end), (start, end)) for p in predicted)
            hit_any = any(_overlaps((p.start, p.end), (start, end)) for p in predicted)
            if kind in kinds:
                stats = kinds[kind]
                stats["gold"] += 1
                stats["found"] += hit_same
                stats["covered"] += hit_any
                if not hit_same and len(stats["misses"]) < examples:
                    stats["misses"].append(row.text[start:end])
            else:
                entry = foreign.setdefault(kind, {"gold": 0, "covered": 0})
                entry["gold"] += 1
                entry["covered"] += hit_any
        for p in predicted:
            stats = kinds[p.kind]
            stats["predicted"] += 1
            touched = [k for s, e, k in row.spans if _overlaps((p.start, p.end), (s, e))]
            if p.kind in touched:
                stats["correct"] += 1
            elif touched and all(k not in kinds for k in touched):
                stats["neutral"] += 1
            elif len(stats["wrong"]) < examples:
                stats["wrong"].append(row.text[p.start : p.end])
    report: dict[str, Any] = {"rows": n_rows, "seconds": seconds, "kinds": {}, "foreign": foreign}
    for kind, s in kinds.items():
        judged = s["predicted"] - s["neutral"]
        report["kinds"][kind] = {
            "gold": s["gold"],
            "predicted": s["predicted"],
            "neutral": s["neutral"],
            "recall": s["found"] / s["gold"] if s["gold"] else None,
            "any_recall": s["covered"] / s["gold"] if s["gold"] else None,
            "precision": s["correct"] / judged if judged else None,
            "misses": s["misses"],
            "wrong": s["wrong"],
        }
    gold = sum(s["gold"] for s in kinds.values())
    report["any_recall"] = sum(s["covered"] for s in kinds.values()) / gold if gold else None
    return report
