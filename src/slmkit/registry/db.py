"""SQLite connection (WAL) and the ordered, named schema migrations of registry.db."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slmkit.registry.records import default_actor

MIGRATIONS: list[tuple[str, str]] = [
    (
        "0001_initial",
        """
        CREATE TABLE artifacts (
            digest TEXT PRIMARY KEY, kind TEXT NOT NULL, size INTEGER NOT NULL,
            created_at TEXT NOT NULL, meta TEXT NOT NULL DEFAULT '{}');
        CREATE TABLE datasets (
            version TEXT PRIMARY KEY, task TEXT NOT NULL, digest TEXT NOT NULL, gold_hash TEXT NOT NULL,
            counts TEXT NOT NULL, meta TEXT NOT NULL, created_at TEXT NOT NULL);
        CREATE INDEX datasets_task ON datasets(task, created_at);
        CREATE TABLE gold_locks (
            task TEXT PRIMARY KEY, gold_hash TEXT NOT NULL, dataset_version TEXT NOT NULL,
            locked_at TEXT NOT NULL, locked_by TEXT NOT NULL);
        CREATE TABLE runs (
            run_id TEXT PRIMARY KEY, task TEXT NOT NULL, dataset_version TEXT NOT NULL,
            base_model TEXT NOT NULL, status TEXT NOT NULL, adapter_digest TEXT,
            metrics TEXT NOT NULL DEFAULT '{}', config TEXT NOT NULL,
            created_at TEXT NOT NULL, finished_at TEXT, error TEXT);
        CREATE INDEX runs_task ON runs(task, created_at);
        CREATE TABLE eval_reports (
            id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT, task TEXT NOT NULL, digest TEXT NOT NULL,
            gold_hash TEXT NOT NULL, passed INTEGER NOT NULL, summary TEXT NOT NULL, created_at TEXT NOT NULL);
        CREATE INDEX eval_reports_run ON eval_reports(run_id, id);
        CREATE TABLE releases (
            id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, version INTEGER NOT NULL,
            run_id TEXT NOT NULL, adapter_digest TEXT NOT NULL, base_model TEXT NOT NULL,
            dataset_version TEXT NOT NULL, gold_hash TEXT NOT NULL, eval_report_digest TEXT NOT NULL,
            config TEXT NOT NULL, parent_version INTEGER, created_by TEXT NOT NULL,
            created_at TEXT NOT NULL, note TEXT NOT NULL DEFAULT '', UNIQUE(name, version));
        CREATE TABLE aliases (
            name TEXT NOT NULL, alias TEXT NOT NULL, version INTEGER NOT NULL, updated_at TEXT NOT NULL,
            PRIMARY KEY(name, alias));
        CREATE TABLE audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, actor TEXT NOT NULL,
            action TEXT NOT NULL, name TEXT, detail TEXT NOT NULL);
        CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
        """,
    ),
    (
        # The latest dataset is the last one *built*: rebuilding an older version's exact data
        # must make it current again, even though its row already exists.
        "0002_datasets_built_at",
        """
        ALTER TABLE datasets ADD COLUMN built_at TEXT;
        ALTER TABLE datasets ADD COLUMN build_seq INTEGER;
        UPDATE datasets SET built_at = created_at, build_seq = rowid;
        CREATE INDEX datasets_task_build ON datasets(task, build_seq);
        """,
    ),
    (
        # What a release came from (hashes, dataset summaries, code, libraries, hardware), and the
        # evidence attached to a release over its life: the rollback rehearsal at release time, a
        # latency run or a review sign-off later. Rows before this migration read as `{}`: unknown.
        # Evidence is append-only like the audit log; a newer row of the same kind supersedes.
        "0003_release_provenance",
        """
        ALTER TABLE releases ADD COLUMN provenance TEXT NOT NULL DEFAULT '{}';
        CREATE TABLE evidence (
            id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, version INTEGER NOT NULL,
            kind TEXT NOT NULL, passed INTEGER, detail TEXT NOT NULL, created_at TEXT NOT NULL,
            created_by TEXT NOT NULL,
            FOREIGN KEY (name, version) REFERENCES releases(name, version));
        CREATE INDEX evidence_release ON evidence(name, version, kind, id);
        CREATE TRIGGER evidence_no_update BEFORE UPDATE ON evidence
            BEGIN SELECT RAISE(ABORT, 'evidence is append-only; record a newer row instead'); END;
        CREATE TRIGGER evidence_no_delete BEFORE DELETE ON evidence
            BEGIN SELECT RAISE(ABORT, 'evidence is append-only; record a newer row instead'); END;
        """,
    ),
    (
        # A reviewer's verdict on one item of a release's review queue (accept, correct with the
        # right answer, reject), from the console or `slmkit review answer`. Append-only: a
        # newer row for the same item is the reviewer's current verdict, the older ones its history.
        "0004_review_verdicts",
        """
        CREATE TABLE review_verdicts (
            id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, version INTEGER NOT NULL,
            item_id TEXT NOT NULL, verdict TEXT NOT NULL CHECK (verdict IN ('accept', 'correct', 'reject')),
            correction TEXT, note TEXT NOT NULL DEFAULT '', report_digest TEXT NOT NULL,
            created_at TEXT NOT NULL, created_by TEXT NOT NULL,
            FOREIGN KEY (name, version) REFERENCES releases(name, version));
        CREATE INDEX review_verdicts_release ON review_verdicts(name, version, item_id, id);
        CREATE TRIGGER review_verdicts_no_update BEFORE UPDATE ON review_verdicts
            BEGIN SELECT RAISE(ABORT, 'verdicts are append-only; record a newer one instead'); END;
        CREATE TRIGGER review_verdicts_no_delete BEFORE DELETE ON review_verdicts
            BEGIN SELECT RAISE(ABORT, 'verdicts are append-only; record a newer one instead'); END;
        """,
    ),
    (
        # One row per `slmkit retrain`: what it read, where it got to, how it ended. A retrain is keyed
        # by (dataset version, config hash, production release) so that an unchanged input is not
        # trained twice; `stage` and `run_id` let a killed retrain resume where it stopped.
        "0005_retrains",
        """
        CREATE TABLE retrains (
            id INTEGER PRIMARY KEY AUTOINCREMENT, task TEXT NOT NULL, inputs TEXT NOT NULL,
            config_hash TEXT NOT NULL, production TEXT NOT NULL, dataset_version TEXT, key TEXT,
            run_id TEXT, stage TEXT NOT NULL, outcome TEXT, release_version INTEGER, why TEXT NOT NULL,
            detail TEXT NOT NULL DEFAULT '{}', started_at TEXT NOT NULL, updated_at TEXT NOT NULL,
            finished_at TEXT, error TEXT);
        CREATE INDEX retrains_task ON retrains(task, id);
        CREATE INDEX retrains_key ON retrains(key);
        """,
    ),
]


def now() -> str:
    """UTC now as ISO-8601 with a `Z`, millisecond precision (sorts as text)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def audit(
    conn: sqlite3.Connection, action: str, name: str | None, detail: dict[str, Any], actor: str | None = None
) -> None:
    """Append one row to the audit log, inside the caller's transaction so it commits with the change."""
    conn.execute(
        "INSERT INTO audit (ts, actor, action, name, detail) VALUES (?, ?, ?, ?, ?)",
        (now(), actor or default_actor(), action, name, json.dumps(detail, sort_keys=True, default=str)),
    )


def connect(path: Path) -> sqlite3.Connection:
    """Open registry.db in WAL mode and bring its schema up to date."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE), never implicit.
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 30000")
    _enable_wal(conn, timeout_s=30.0)
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA foreign_keys = ON")
    migrate(conn)
    return conn


def _enable_wal(conn: sqlite3.Connection, timeout_s: float) -> None:
    # Switching a fresh database to WAL does not wait on busy_timeout: two processes opening a
    # new registry at once would see "database is locked". Once in WAL (persistent), this is a no-op.
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply the migrations not yet recorded, in order, each in its own transaction."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    applied: list[str] = []
    for name, sql in MIGRATIONS:
        if conn.execute("SELECT 1 FROM schema_migrations WHERE name = ?", (name,)).fetchone():
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Another process may have applied it while we waited for the lock.
            if conn.execute("SELECT 1 FROM schema_migrations WHERE name = ?", (name,)).fetchone():
                conn.execute("COMMIT")
                continue
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, now()))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


def _statements(sql: str) -> list[str]:
    """Split a migration into statements; a trigger body keeps its inner semicolons.

    Not `executescript`: it commits on its own, and a migration must apply whole or not at all.
    """
    statements: list[str] = []
    current: list[str] = []
    for line in sql.strip().splitlines():
        current.append(line)
        joined = "\n".join(current).strip()
        if sqlite3.complete_statement(joined):
            statements.append(joined)
            current = []
    if "".join(current).strip():
        raise ValueError(f"incomplete SQL statement in a migration: {' '.join(current)[:200]}")
    return statements
