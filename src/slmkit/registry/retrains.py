"""The `retrains` table: one row per `slmkit retrain`, its stage while it runs and its outcome after.

Written by slmkit.retrain only; each change is its own short transaction, audited by the caller
(who = retrain). Outcomes: released (the alias moved), blocked (a gate or the checklist said no;
nothing moved), abandoned (an unfinished retrain whose inputs changed before it could resume).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from slmkit.registry.db import now

STAGES = ("build", "train", "eval", "release", "done")
OUTCOMES = ("released", "blocked", "abandoned")
_UPDATABLE = {"dataset_version", "key", "run_id", "stage", "outcome", "release_version", "detail", "error"}


@dataclass(frozen=True)
class RetrainRecord:
    id: int
    task: str
    inputs: str
    config_hash: str
    production: str  # name@version behind release.alias when it started, '' when none
    dataset_version: str | None
    key: str | None
    run_id: str | None
    stage: str
    outcome: str | None
    release_version: int | None
    why: str
    detail: dict[str, Any] = field(default_factory=dict)
    started_at: str = ""
    updated_at: str = ""
    finished_at: str | None = None
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.outcome is not None


def from_row(row: sqlite3.Row) -> RetrainRecord:
    data = dict(row)
    data["detail"] = json.loads(data["detail"])
    return RetrainRecord(**data)


def insert(conn: sqlite3.Connection, *, task: str, inputs: str, config_hash: str, production: str, why: str) -> int:
    stamp = now()
    cur = conn.execute(
        "INSERT INTO retrains (task, inputs, config_hash, production, stage, why, started_at, updated_at) "
        "VALUES (?, ?, ?, ?, 'build', ?, ?, ?)",
        (task, inputs, config_hash, production, why, stamp, stamp),
    )
    return int(cur.lastrowid or 0)


def update(conn: sqlite3.Connection, retrain_id: int, changes: dict[str, Any]) -> None:
    unknown = set(changes) - _UPDATABLE
    if unknown:
        raise ValueError(f"retrains has no updatable column {sorted(unknown)}")
    values = {k: json.dumps(v, sort_keys=True, default=str) if k == "detail" else v for k, v in changes.items()}
    values["updated_at"] = now()
    if changes.get("outcome") is not None:
        values["finished_at"] = values["updated_at"]
    assignments = ", ".join(f"{k} = ?" for k in values)
    conn.execute(f"UPDATE retrains SET {assignments} WHERE id = ?", (*values.values(), retrain_id))


def get(conn: sqlite3.Connection, retrain_id: int) -> RetrainRecord:
    return from_row(conn.execute("SELECT * FROM retrains WHERE id = ?", (retrain_id,)).fetchone())


def listed(conn: sqlite3.Connection, task: str, limit: int) -> list[RetrainRecord]:
    rows = conn.execute("SELECT * FROM retrains WHERE task = ? ORDER BY id DESC LIMIT ?", (task, limit))
    return [from_row(r) for r in rows]
