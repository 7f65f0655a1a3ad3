"""What an input row becomes: a `Row` headed for a split, or a `Reject` with its reason.

Every reject kind is listed in `REJECT_KINDS` with what it means; the report counts rejects by
kind, and rejects.jsonl holds each one with the line it came from and what to fix.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from slmkit.data.dataset import Example

REJECT_KINDS: dict[str, str] = {
    "encoding": "the line is not valid UTF-8",
    "json": "the line is not a JSON object (not JSON, truncated, or an array / string / number)",
    "columns": "the CSV row has more or fewer cells than the header",
    "chat": "a chat log line whose messages are not user -> assistant turns (missing, malformed, no answer)",
    "missing_field": "an input field or the output is absent, or the output is empty",
    "field_type": "an input field is not text (a number, list or object)",
    "output_json": "the output is neither a JSON object nor JSON text of one",
    "schema": "the output does not match the task's output schema",
    "empty": "every input field is blank",
    "normalize": "a data.normalize normalizer cannot read an output value (e.g. an ambiguous date)",
    "too_long": "the input is longer than data.max_input_chars, or prompt + answer longer than data.max_tokens",
    "pii_schema": "after personal data was replaced, the answer no longer fits the output schema",
    "duplicate": "the same input and answer as an earlier row (the first is kept)",
    "near_duplicate": "nearly the same input (MinHash) and the same answer as an earlier row (the first is kept)",
    "semantic_duplicate": "the same meaning (MiniLM embeddings) and the same answer as an earlier row",
    "conflict": "the same or nearly the same input as another row with a different answer (all are rejected)",
    "gold_overlap": "the same input as a row of the locked gold set, with a different answer",
    "gold_leak": "an exact, near or semantic copy of a gold row: removed from the training side",
    "gold_group": "its split.group_by group is in the locked gold set: kept out of training",
    "gold_unlocked": "a row of a gold source (role: gold) that is not in the locked gold set (the file changed)",
}


@dataclass(frozen=True)
class Row:
    """A valid, normalized example on its way to a split, with its dedup key."""

    example: Example
    key: str

    @property
    def label(self) -> Any:
        return self.example.label

    def reject(self, kind: str, reason: str, stage: str) -> Reject:
        """This row as a reject (after validation), showing the input and answer it had."""
        e = self.example
        raw = {"input": e.input, "output": e.output}
        return Reject(source=e.source, id=e.id, kind=kind, reason=reason, stage=stage, raw=raw)


@dataclass(frozen=True)
class Reject:
    """A row that is not used, where it came from, and why."""

    source: str
    id: str | None
    kind: str
    reason: str
    stage: str
    raw: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "id": self.id,
            "kind": self.kind,
            "reason": self.reason,
            "stage": self.stage,
            "raw": self.raw,
        }


class RejectLog:
    """rejects.jsonl, appended as rows are rejected (nothing held in memory), with counts by kind."""

    def __init__(self, path: Path, scrub: Callable[[Any], Any] | None = None) -> None:
        self.path = path
        self._scrub = scrub
        self.by_kind: Counter[str] = Counter()
        self.first_by_kind: dict[str, Reject] = {}
        self._fh: IO[str] = path.open("w", encoding="utf-8")

    def add(self, reject: Reject) -> None:
        if reject.kind not in REJECT_KINDS:
            raise ValueError(f"slmkit bug: unknown reject kind {reject.kind!r}")
        if self._scrub is not None:
            # What a reject shows and says passes the same PII removal as the kept rows.
            reject = Reject(
                source=reject.source,
                id=self._scrub(reject.id),
                kind=reject.kind,
                reason=self._scrub(reject.reason),
                stage=reject.stage,
                raw=self._scrub(reject.raw),
            )
        self._fh.write(json.dumps(reject.as_dict(), ensure_ascii=False) + "\n")
        self.by_kind[reject.kind] += 1
        self.first_by_kind.setdefault(reject.kind, reject)

    def extend(self, rejects: Iterable[Reject]) -> None:
        for reject in rejects:
            self.add(reject)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> RejectLog:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    """One JSON object per line, UTF-8, keys in the order given (they are canonical already)."""
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def answer_difference(here: dict[str, Any], there: dict[str, Any], there_name: str = "there") -> str:
    """What differs between two answers, e.g. "priority 'low' here, 'urgent' there"."""
    return "; ".join(
        f"{name} {here.get(name)!r} here, {there.get(name)!r} {there_name}"
        for name in dict.fromkeys([*here, *there])
        if here.get(name) != there.get(name)
    )
