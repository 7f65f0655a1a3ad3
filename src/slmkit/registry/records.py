"""The records the registry hands out, and their (de)serialisation to SQLite rows."""

from __future__ import annotations

import getpass
import json
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DatasetRecord:
    """One built dataset version: a directory in the object store plus its counts."""

    version: str
    task: str
    digest: str
    gold_hash: str
    counts: dict[str, Any]
    meta: dict[str, Any]
    created_at: str
    built_at: str | None = None  # the last build that produced this version
    build_seq: int | None = None  # orders builds; timestamps can tie


@dataclass(frozen=True)
class GoldLock:
    """The gold set a task is evaluated on; fixed until `slmkit data build --new-gold`."""

    task: str
    gold_hash: str
    dataset_version: str
    locked_at: str
    locked_by: str


@dataclass(frozen=True)
class RunRecord:
    """One training run; `adapter_digest` is set once it completed."""

    run_id: str
    task: str
    dataset_version: str
    base_model: dict[str, Any]
    status: str
    adapter_digest: str | None
    metrics: dict[str, Any]
    config: dict[str, Any]
    created_at: str
    finished_at: str | None
    error: str | None


@dataclass(frozen=True)
class EvalRecord:
    """One evaluation report (stored as an object) and whether its gates passed."""

    id: int
    run_id: str | None
    task: str
    digest: str
    gold_hash: str
    passed: bool
    summary: dict[str, Any]
    created_at: str


@dataclass(frozen=True)
class Release:
    """A numbered, immutable release of `name`; `aliases` are those pointing at it now."""

    name: str
    version: int
    run_id: str
    adapter_digest: str
    base_model: dict[str, Any]
    dataset_version: str
    gold_hash: str
    eval_report_digest: str
    config: dict[str, Any]
    parent_version: int | None
    created_by: str
    created_at: str
    note: str
    aliases: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)  # {} for releases recorded before 0003
    evidence: list[Evidence] = field(default_factory=list)  # oldest first

    @property
    def ref(self) -> str:
        """`name@version`, the form `Registry.resolve` and the serving API accept."""
        return f"{self.name}@{self.version}"

    def latest_evidence(self, kind: str) -> Evidence | None:
        """The newest evidence of `kind` (a newer row supersedes an older one), or None."""
        found = [e for e in self.evidence if e.kind == kind]
        return found[-1] if found else None


@dataclass(frozen=True)
class NewEvidence:
    """Evidence about to be recorded: `passed` is None where the check does not apply."""

    kind: str  # rehearsal, latency, review, ...
    passed: bool | None
    detail: dict[str, Any]

    @property
    def status(self) -> str:
        return evidence_status(self.passed)


@dataclass(frozen=True)
class Evidence:
    """One recorded piece of evidence about a release (append-only)."""

    id: int
    name: str
    version: int
    kind: str
    passed: bool | None
    detail: dict[str, Any]
    created_at: str
    created_by: str

    @property
    def status(self) -> str:
        return evidence_status(self.passed)


def evidence_status(passed: bool | None) -> str:
    """pass / fail / n/a (a check that does not apply, such as rolling back a first release)."""
    return "n/a" if passed is None else ("pass" if passed else "fail")


@dataclass(frozen=True)
class ReviewVerdict:
    """A reviewer's current verdict on one review item of a release (the newest row for the item)."""

    id: int
    name: str
    version: int
    item_id: str
    verdict: str  # accept / correct / reject
    correction: Any  # the right answer (parsed JSON) when verdict is "correct", else None
    note: str
    report_digest: str  # the eval report the item was drawn from
    created_at: str
    created_by: str


@dataclass(frozen=True)
class ExportRecord:
    """An exported file or directory (peft, merged, gguf) of a release, and how its check went."""

    digest: str
    size: int
    created_at: str
    meta: dict[str, Any]  # release, version, format, quantization, agreement, ... (see train/export.py)


@dataclass(frozen=True)
class AuditEntry:
    """One row of the append-only audit log."""

    id: int
    ts: str
    actor: str
    action: str
    name: str | None
    detail: dict[str, Any]


_ACTING_AS: ContextVar[str | None] = ContextVar("slmkit_acting_as", default=None)


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Record `actor` as who did everything in the block (`slmkit retrain` acts as `retrain`)."""
    token = _ACTING_AS.set(actor)
    try:
        yield
    finally:
        _ACTING_AS.reset(token)


def default_actor() -> str:
    """`user@host` of this process, recorded as who released or moved an alias (or who it acts as)."""
    acting = _ACTING_AS.get()
    if acting:
        return acting
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name (some containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def to_json(value: Any) -> str:
    """Canonical JSON for a column: sorted keys, so equal values are equal text."""
    return json.dumps(value, sort_keys=True, default=str)


def to_json_ordered(value: Any) -> str:
    """JSON that keeps key order, for configs and base-model records.

    In a config the order carries meaning: an output schema's property order is the order the
    model writes its answer in, and serving re-renders the trained prompt from this config.
    """
    return json.dumps(value, default=str)


def dataset_from_row(row: sqlite3.Row) -> DatasetRecord:
    d = dict(row)
    return DatasetRecord(**{**d, "counts": json.loads(d["counts"]), "meta": json.loads(d["meta"])})


def run_from_row(row: sqlite3.Row) -> RunRecord:
    d = dict(row)
    return RunRecord(
        **{
            **d,
            "base_model": json.loads(d["base_model"]),
            "metrics": json.loads(d["metrics"]),
            "config": json.loads(d["config"]),
        }
    )


def eval_from_row(row: sqlite3.Row) -> EvalRecord:
    d = dict(row)
    return EvalRecord(**{**d, "passed": bool(d["passed"]), "summary": json.loads(d["summary"])})


def release_from_row(row: sqlite3.Row, aliases: list[str], evidence: list[Evidence] | None = None) -> Release:
    d = dict(row)
    d.pop("id")
    return Release(
        **{
            **d,
            "base_model": json.loads(d["base_model"]),
            "config": json.loads(d["config"]),
            "provenance": json.loads(d.get("provenance") or "{}"),
            "aliases": aliases,
            "evidence": evidence or [],
        }
    )


def evidence_from_row(row: sqlite3.Row) -> Evidence:
    d = dict(row)
    passed = None if d["passed"] is None else bool(d["passed"])
    return Evidence(**{**d, "passed": passed, "detail": json.loads(d["detail"])})


def verdict_from_row(row: sqlite3.Row) -> ReviewVerdict:
    d = dict(row)
    return ReviewVerdict(**{**d, "correction": None if d["correction"] is None else json.loads(d["correction"])})


def audit_from_row(row: sqlite3.Row) -> AuditEntry:
    return AuditEntry(row["id"], row["ts"], row["actor"], row["action"], row["name"], json.loads(row["detail"]))
