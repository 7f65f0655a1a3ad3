"""The serving request log (.slmkit/requests.db): one row per request, never its text.

Monitoring and retraining read it. Request and answer text are not stored at all: a log is the
last place personal data should leak to. Only numbers, flags and names the server chose
(release, outcome, error kind) or an operator chose (the API key's name, never its secret) are
written, and they pass the data stage's PII redactor first like the one string a client
chooses, the model it asked for (`model: "jane@example.com"` is stored as `<EMAIL_1>`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable
from dataclasses import astuple, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Ordered, named migrations; a schema change is a new entry, never an edit of an applied one.
MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "0001_requests",
        [
            """CREATE TABLE requests (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                ts TEXT NOT NULL,
                request_id TEXT NOT NULL,
                model_ref TEXT NOT NULL,
                release_name TEXT,
                release_version INTEGER,
                latency_ms REAL NOT NULL,
                prompt_tokens INTEGER NOT NULL DEFAULT 0,
                completion_tokens INTEGER NOT NULL DEFAULT 0,
                valid INTEGER,
                refused INTEGER,
                replaced INTEGER,
                attempts INTEGER NOT NULL DEFAULT 0,
                escalate INTEGER,
                outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'refused', 'error')),
                error_kind TEXT)""",
            "CREATE INDEX requests_ts ON requests(ts)",
            "CREATE INDEX requests_release ON requests(release_name, release_version, ts)",
        ],
    ),
    (
        "0002_api_key",
        [
            # The name of the API key a request came with (the name an operator gave it; never the secret).
            "ALTER TABLE requests ADD COLUMN api_key TEXT",
            "CREATE INDEX requests_api_key ON requests(api_key, ts)",
        ],
    ),
]


def apply_migrations(conn: sqlite3.Connection, migrations: list[tuple[str, list[str]]]) -> list[str]:
    """Apply the named migrations not yet recorded in `schema_migrations`, in order, one transaction each.

    `conn` must be in autocommit mode (isolation_level=None); returns the names applied now.
    """
    applied = []
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    for name, statements in migrations:
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Checked under the write lock: another process may have applied it meanwhile.
            if not conn.execute("SELECT 1 FROM schema_migrations WHERE name = ?", (name,)).fetchone():
                for statement in statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, now()))
                applied.append(name)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return applied


def _redactor() -> Callable[[str], str]:
    """Every kind of personal data the data stage knows, whatever the project's data.pii says: a
    project that keeps PII out of training on purpose still must not collect it from traffic."""
    from slmkit.config import PiiConfig
    from slmkit.data.pii import PiiScrubber

    return PiiScrubber(PiiConfig(enabled=True)).scrub


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class RequestRecord:
    """What one request did. Flags are None when the request failed before an answer existed."""

    request_id: str
    model_ref: str  # the model the client asked for (name, name@3, name@staging)
    latency_ms: float
    outcome: str  # ok / refused / error
    release_name: str | None = None
    release_version: int | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    valid: bool | None = None  # the first attempt was valid
    refused: bool | None = None
    replaced: bool | None = None  # the guard put the refusal output in place of the model's answers
    attempts: int = 0
    escalate: bool | None = None
    error_kind: str | None = None  # e.g. unknown_model, bad_request, no_valid_answer, internal
    api_key: str | None = None  # the name of the API key that made the request; None while keys are off
    ts: str = field(default_factory=now)  # when the request arrived (UTC)


_COLUMNS = [f.name for f in fields(RequestRecord)]
_BOOLS = {"valid", "refused", "replaced", "escalate"}


class RequestLog:
    """Append-only request metrics in SQLite (WAL); one instance may be shared by threads."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit, as in the registry.
        self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        self._conn.execute("PRAGMA busy_timeout = 30000")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        self.migrate()
        self._redact = _redactor()

    def migrate(self) -> list[str]:
        """Apply the migrations not yet recorded, in order, each in its own transaction."""
        with self._lock:
            return apply_migrations(self._conn, MIGRATIONS)

    def append(self, records: Iterable[RequestRecord]) -> int:
        """Write records in one transaction; returns how many."""
        rows = [
            astuple(replace(r, model_ref=self._redact(r.model_ref), api_key=r.api_key and self._redact(r.api_key)))
            for r in records
        ]
        if not rows:
            return 0
        sql = f"INSERT INTO requests ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(sql, rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return len(rows)

    def record(self, record: RequestRecord) -> None:
        self.append([record])

    def rows(
        self, limit: int = 1000, *, release_name: str | None = None, api_key: str | None = None
    ) -> list[dict[str, Any]]:
        """The latest rows (of one release, of one API key), newest first; flags come back as bools.

        `api_key` is a key's name as the operator gave it: it is matched in the form the log keeps
        (redacted like every stored name), so a name the redactor changed still finds its rows.
        """
        if api_key is not None:
            api_key = self._redact(api_key)
        with self._lock:
            cursor = self._conn.execute(
                "SELECT * FROM requests WHERE (release_name = ? OR ? IS NULL) AND (api_key = ? OR ? IS NULL) "
                "ORDER BY id DESC LIMIT ?",
                (release_name, release_name, api_key, api_key, limit),
            )
            rows = [dict(r) for r in cursor]
        for row in rows:
            for name in _BOOLS:
                if row[name] is not None:
                    row[name] = bool(row[name])
        return rows

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0])

    def columns(self) -> list[str]:
        with self._lock:
            return [r["name"] for r in self._conn.execute("PRAGMA table_info(requests)")]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> RequestLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
