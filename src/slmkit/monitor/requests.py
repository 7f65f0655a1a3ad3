"""The serving request log (.slmkit/requests.db): one row per request, never its text.

Monitoring and retraining read it. Request and answer text are not stored in `requests`: a log
is the last place personal data should leak to. Only numbers, flags and names the server chose
(release, outcome, error kind, the answer's label, one of the schema's enum values) or an
operator chose (the API key's name, never its secret) are written, and they pass the data
stage's PII redactor first like the one string a client chooses, the model it asked for
(`model: "jane@example.com"` is stored as `<EMAIL_1>`). The one derived trace of the input is
its embedding (int8, from the PII-redacted input), for input drift; `monitor.embeddings: false`
leaves it out. Text is written only to `captures`, when `monitor.capture` asks for it, redacted
(see capture.py), and the alert tables (alerts.py) live here too.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slmkit.errors import StageError

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
    (
        "0003_signals",
        [
            # Task signals per answer (monitor.signals): the label value, null fields, confidence,
            # token timings, and the input's embedding with how unlike the training inputs it is.
            "ALTER TABLE requests ADD COLUMN label TEXT",
            "ALTER TABLE requests ADD COLUMN null_fields INTEGER",
            "ALTER TABLE requests ADD COLUMN confidence REAL",
            "ALTER TABLE requests ADD COLUMN ttft_ms REAL",
            "ALTER TABLE requests ADD COLUMN itl_ms REAL",
            "ALTER TABLE requests ADD COLUMN embedding BLOB",
            "ALTER TABLE requests ADD COLUMN novelty REAL",
            "ALTER TABLE requests ADD COLUMN flagged INTEGER",
            "CREATE INDEX requests_request_id ON requests(request_id)",
        ],
    ),
    (
        "0004_captures",
        [
            # Opt-in (monitor.capture): a sampled share of inputs and answers, PII-redacted before
            # they are written, deleted after monitor.capture.retention_days.
            """CREATE TABLE captures (
                request_id TEXT PRIMARY KEY,
                ts TEXT NOT NULL,
                release_name TEXT,
                release_version INTEGER,
                messages TEXT NOT NULL,
                answer TEXT,
                label TEXT,
                confidence REAL,
                valid INTEGER,
                refused INTEGER,
                escalate INTEGER,
                flagged INTEGER,
                novelty REAL,
                redactions TEXT NOT NULL DEFAULT '{}')""",
            "CREATE INDEX captures_ts ON captures(ts)",
            "CREATE INDEX captures_release ON captures(release_name, release_version, ts)",
        ],
    ),
    (
        "0005_alerts",
        [
            # The state of each alert rule per release, and every change of state with its evidence.
            """CREATE TABLE alert_state (
                rule TEXT NOT NULL,
                release TEXT NOT NULL,
                state TEXT NOT NULL CHECK (state IN ('inactive', 'pending', 'firing', 'resolved')),
                since TEXT NOT NULL,
                value REAL,
                evaluated_at TEXT NOT NULL,
                fired_at TEXT,
                resolved_at TEXT,
                evidence TEXT NOT NULL DEFAULT '{}',
                PRIMARY KEY (rule, release))""",
            """CREATE TABLE alert_events (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                ts TEXT NOT NULL,
                rule TEXT NOT NULL,
                release TEXT NOT NULL,
                state TEXT NOT NULL,
                previous TEXT NOT NULL,
                value REAL,
                evidence TEXT NOT NULL,
                notified_at TEXT,
                notify_error TEXT,
                notify_attempts INTEGER NOT NULL DEFAULT 0)""",
            "CREATE INDEX alert_events_ts ON alert_events(ts)",
        ],
    ),
    (
        "0006_traffic_review",
        [
            # The production review queue (monitor.queue): each draw of `slmkit review queue --traffic`,
            # and every captured request it put in the queue, copied so that capture retention cannot
            # take an item out from under a reviewer; a request is queued at most once (the key).
            """CREATE TABLE review_batches (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                created_at TEXT NOT NULL,
                created_by TEXT NOT NULL,
                window_from TEXT,
                window_to TEXT NOT NULL,
                population INTEGER NOT NULL,
                counts TEXT NOT NULL,
                settings TEXT NOT NULL)""",
            """CREATE TABLE review_queue (
                request_id TEXT PRIMARY KEY,
                batch INTEGER NOT NULL REFERENCES review_batches(id),
                stratum TEXT NOT NULL CHECK (stratum IN ('random', 'low_confidence', 'flagged', 'refused')),
                queued_at TEXT NOT NULL,
                ts TEXT NOT NULL,
                release_name TEXT,
                release_version INTEGER,
                messages TEXT NOT NULL,
                answer TEXT,
                label TEXT,
                confidence REAL,
                refused INTEGER,
                escalate INTEGER,
                flagged INTEGER,
                novelty REAL)""",
            "CREATE INDEX review_queue_batch ON review_queue(batch, stratum)",
            # A reviewer's verdict on a queued request; append-only, the newest per request is current.
            """CREATE TABLE review_answers (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                request_id TEXT NOT NULL REFERENCES review_queue(request_id),
                verdict TEXT NOT NULL CHECK (verdict IN ('accept', 'correct', 'reject')),
                correction TEXT,
                note TEXT NOT NULL DEFAULT '',
                reviewer TEXT NOT NULL,
                answered_at TEXT NOT NULL,
                via TEXT NOT NULL)""",
            "CREATE INDEX review_answers_request ON review_answers(request_id, id)",
            """CREATE TRIGGER review_answers_no_update BEFORE UPDATE ON review_answers
                BEGIN SELECT RAISE(ABORT, 'review answers are append-only; record a newer one instead'); END""",
            """CREATE TRIGGER review_answers_no_delete BEFORE DELETE ON review_answers
                BEGIN SELECT RAISE(ABORT, 'review answers are append-only; record a newer one instead'); END""",
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


def read_only_connection(path: Path) -> sqlite3.Connection:
    """A connection that can only read an existing log whose migrations are all applied.

    Raises StageError when the file is missing or was written by an older slmkit (its schema
    lacks columns a reader expects): upgrading it is a write, left to the writers.
    """
    if not path.is_file():
        raise StageError(f"no request log at {path}", hint="`slmkit serve` writes one as it answers")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30.0, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 30000")
    try:
        applied = {row[0] for row in conn.execute("SELECT name FROM schema_migrations")}
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StageError(f"cannot read the request log {path}: {exc}") from None
    missing = [name for name, _ in MIGRATIONS if name not in applied]
    if missing:
        conn.close()
        raise StageError(
            f"the request log {path} predates this slmkit (migrations {', '.join(missing)} not applied)",
            hint="`slmkit monitor` or a restart of `slmkit serve` upgrades it",
        )
    return conn


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
    # Task signals of an answer (slmkit.monitor.signals); None when not known.
    label: str | None = None  # the label field's value, when the answer is schema-valid
    null_fields: int | None = None  # output fields that are null or missing
    confidence: float | None = None  # probability of the answer's least likely token, as eval computes it
    ttft_ms: float | None = None  # arrival to the first generated token
    itl_ms: float | None = None  # mean gap between generated tokens
    embedding: bytes | None = None  # int8 all-MiniLM-L6-v2 embedding of the PII-redacted input
    novelty: float | None = None  # 1 - cosine to the nearest training input of the reference sample
    flagged: bool | None = None  # novelty above the reference's own 99th percentile: unlike training


_COLUMNS = [f.name for f in fields(RequestRecord)]
_BOOLS = {"valid", "refused", "replaced", "escalate", "flagged"}


@dataclass(frozen=True)
class CaptureRow:
    """One captured request for review (monitor.capture), already PII-redacted by capture.py."""

    request_id: str
    ts: str
    release_name: str | None
    release_version: int | None
    messages: str  # JSON list of {"role", "content"}: the request's user and assistant turns, redacted
    answer: str | None  # the answer returned, redacted
    label: str | None = None
    confidence: float | None = None
    valid: bool | None = None
    refused: bool | None = None
    escalate: bool | None = None
    flagged: bool | None = None
    novelty: float | None = None
    redactions: str = "{}"  # JSON {kind: count} of what the redactor replaced


_CAPTURE_COLUMNS = [f.name for f in fields(CaptureRow)]


class RequestLog:
    """Append-only request metrics in SQLite (WAL); one instance may be shared by threads.

    `read_only=True` opens an existing log for reading only (SQLite's mode=ro: no migration, no
    pragma that writes, and any write is an error), for pages that must not change what they show.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self._lock = threading.Lock()
        self._redactor: Callable[[str], str] | None = None
        if read_only:
            self._conn = read_only_connection(self.path)
            self._conn.row_factory = sqlite3.Row
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: transactions are explicit, as in the registry.
        self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA busy_timeout = 30000")
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA synchronous = NORMAL")
        # Deleted captures (retention) are overwritten with zeros, not left in free pages.
        self._conn.execute("PRAGMA secure_delete = ON")
        self.migrate()
        self._redactor = _redactor()

    def _redact(self, text: str) -> str:
        if self._redactor is None:  # a read-only log builds the scrubber only if a lookup needs it
            self._redactor = _redactor()
        return self._redactor(text)

    def migrate(self) -> list[str]:
        """Apply the migrations not yet recorded, in order, each in its own transaction."""
        with self._lock:
            return apply_migrations(self._conn, MIGRATIONS)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction on the shared connection (BEGIN IMMEDIATE ... COMMIT)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, params))

    def append(self, records: Iterable[RequestRecord], captures: Iterable[CaptureRow] = ()) -> int:
        """Write records (and captured requests) in one transaction; returns how many records."""
        rows = [
            astuple(replace(r, model_ref=self._redact(r.model_ref), api_key=r.api_key and self._redact(r.api_key)))
            for r in records
        ]
        captured = [astuple(c) for c in captures]
        if not rows and not captured:
            return 0
        sql = f"INSERT INTO requests ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
        capture_sql = (
            f"INSERT OR REPLACE INTO captures ({', '.join(_CAPTURE_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(_CAPTURE_COLUMNS))})"
        )
        with self.transaction() as conn:
            conn.executemany(sql, rows)
            conn.executemany(capture_sql, captured)
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
        rows = [
            dict(r)
            for r in self.read(
                "SELECT * FROM requests WHERE (release_name = ? OR ? IS NULL) AND (api_key = ? OR ? IS NULL) "
                "ORDER BY id DESC LIMIT ?",
                (release_name, release_name, api_key, api_key, limit),
            )
        ]
        for row in rows:
            for name in _BOOLS:
                if row[name] is not None:
                    row[name] = bool(row[name])
        return rows

    def captures(self, limit: int = 1000, *, release_name: str | None = None) -> list[dict[str, Any]]:
        """The latest captured requests (of one release), newest first; messages parsed from JSON."""
        rows = [
            dict(r)
            for r in self.read(
                "SELECT * FROM captures WHERE (release_name = ? OR ? IS NULL) ORDER BY ts DESC, rowid DESC LIMIT ?",
                (release_name, release_name, limit),
            )
        ]
        for row in rows:
            row["messages"] = json.loads(row["messages"])
            row["redactions"] = json.loads(row["redactions"])
            for name in ("valid", "refused", "escalate", "flagged"):
                if row[name] is not None:
                    row[name] = bool(row[name])
        return rows

    def count(self) -> int:
        return int(self.read("SELECT COUNT(*) FROM requests")[0][0])

    def columns(self, table: str = "requests") -> list[str]:
        return [r["name"] for r in self.read(f"PRAGMA table_info({table})")]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> RequestLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
