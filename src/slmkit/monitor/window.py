"""Reading the request log for monitoring: one release's rows in a time span, as numpy columns.

`load_traffic` reads the rows once (in chunks, as arrays: a million rows take a few tens of MB,
not a Python object each), and `window_metrics` computes every metric for any sub-window from
them, so the alert evaluator and the report read the log once however many windows they judge.
Reading is what costs (Python's sqlite3 builds an object per value), so the six flags travel
packed in one number, and labels are counted by SQLite (`label_counts`) rather than read.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from slmkit.monitor.requests import RequestLog, read_only_connection

CHUNK = 100_000
# The columns of a Traffic; flags are 1.0 / 0.0 / nan (unknown).
FLAGS = ("valid", "replaced", "refused", "escalate", "flagged")
NUMBERS = ("null_fields", "latency_ms", "ttft_ms", "itl_ms", "confidence")
_COLUMNS = ("t", "error", *FLAGS, *NUMBERS)
# Each flag as a base-3 digit (0 false, 1 true, 2 unknown), the error bit below them.
_PACKED = "(outcome = 'error') + " + " + ".join(f"{2 * 3**i} * IFNULL({flag}, 2)" for i, flag in enumerate(FLAGS))


def stamp(moment: datetime) -> str:
    """The request log's timestamp form: UTC, milliseconds, Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Traffic:
    """The rows of one release in [start, end): `columns[name]` are aligned arrays (see _COLUMNS)."""

    name: str
    version: int
    start: datetime
    end: datetime
    columns: dict[str, np.ndarray]

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def __len__(self) -> int:
        return len(self.columns["t"])

    def mask(self, seconds: float) -> np.ndarray:
        """Rows of the last `seconds` of the span."""
        return self.columns["t"] >= (self.end - self.start).total_seconds() - seconds


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A read connection (migrations applied first, so an old log reads with every column).

    `read_only=True` applies nothing and opens the file with SQLite's mode=ro (see
    requests.read_only_connection): for readers that must leave the log as they found it.
    """
    if read_only:
        return read_only_connection(path)
    RequestLog(path).close()
    conn = sqlite3.connect(path, timeout=30.0)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def releases_in(conn: sqlite3.Connection, start: datetime, end: datetime) -> list[tuple[str, int]]:
    """(name, version) of every release that answered or failed a request in [start, end), by first seen."""
    # Each release's first row in the span is one seek of the (release, ts) index: the span's rows
    # themselves are never scanned (a day of a busy log is a million of them).
    known = conn.execute(
        "SELECT DISTINCT release_name, release_version FROM requests "
        "WHERE release_name IS NOT NULL AND release_version IS NOT NULL"
    ).fetchall()
    first_seen = []
    for name, version in known:
        (first,) = conn.execute(
            "SELECT MIN(ts) FROM requests WHERE release_name = ? AND release_version = ? AND ts >= ? AND ts < ?",
            (name, version, stamp(start), stamp(end)),
        ).fetchone()
        if first is not None:
            first_seen.append((first, str(name), int(version)))
    return [(name, version) for _, name, version in sorted(first_seen)]


def load_traffic(conn: sqlite3.Connection, name: str, version: int, start: datetime, end: datetime) -> Traffic:
    """Every row of release name@version that arrived in [start, end)."""
    sql = (
        # Seconds since `start`, rounded to the millisecond the log keeps (julianday is a float).
        f"SELECT ROUND((julianday(ts) - julianday(?)) * 86400.0, 3), {_PACKED}, {', '.join(NUMBERS)} FROM requests "
        "WHERE release_name = ? AND release_version = ? AND ts >= ? AND ts < ?"
    )
    cursor = conn.execute(sql, (stamp(start), name, version, stamp(start), stamp(end)))
    parts: list[np.ndarray] = []
    while True:
        chunk = cursor.fetchmany(CHUNK)
        if not chunk:
            break
        parts.append(np.array(chunk, dtype=float).reshape(len(chunk), 2 + len(NUMBERS)))  # None becomes nan
    table = np.vstack(parts) if parts else np.zeros((0, 2 + len(NUMBERS)))
    packed = table[:, 1].astype(np.int64)
    columns = {"t": table[:, 0], "error": (packed % 2).astype(float)}
    for i, flag in enumerate(FLAGS):
        digit = (packed // (2 * 3**i)) % 3
        columns[flag] = np.where(digit == 2, np.nan, digit.astype(float))
    for i, number in enumerate(NUMBERS):
        columns[number] = table[:, 2 + i]
    return Traffic(name, version, start, end, columns)


def label_counts(conn: sqlite3.Connection, name: str, version: int, start: datetime, end: datetime) -> Counter[str]:
    """How many answers of name@version in [start, end) carried each label (counted by SQLite)."""
    rows = conn.execute(
        "SELECT label, COUNT(*) FROM requests WHERE release_name = ? AND release_version = ? AND ts >= ? AND ts < ? "
        "AND label IS NOT NULL AND outcome != 'error' GROUP BY label",
        (name, version, stamp(start), stamp(end)),
    )
    return Counter({str(label): int(count) for label, count in rows})


def recent_embeddings(
    conn: sqlite3.Connection, name: str, version: int, start: datetime, end: datetime, limit: int
) -> list[bytes]:
    """The stored input embeddings of the `limit` most recent answered requests of the window."""
    rows = conn.execute(
        "SELECT embedding FROM requests WHERE release_name = ? AND release_version = ? AND ts >= ? AND ts < ? "
        "AND embedding IS NOT NULL ORDER BY ts DESC, id DESC LIMIT ?",
        (name, version, stamp(start), stamp(end), limit),
    )
    return [bytes(r[0]) for r in rows]


def window_metrics(
    traffic: Traffic,
    mask: np.ndarray | None = None,
    *,
    fields: int = 0,
    span_s: float | None = None,
    labels: Counter[str] | None = None,
) -> dict[str, Any]:
    """Every request-log metric of the rows in `mask` (all rows when None); None where nothing to measure.

    Rates of answers (schema validity, refusals, ...) are over answered requests; the error rate
    over every request; `null_field_rate` over the answer's fields (`fields` of them each);
    requests per minute over `span_s` seconds (default: the whole span); label shares from
    `labels` (the window's `label_counts`), when given.
    """
    c = traffic.columns if mask is None else {k: v[mask] for k, v in traffic.columns.items()}
    requests = len(c["t"])
    answered = c["error"] == 0
    answers = int(answered.sum())
    span_s = (traffic.end - traffic.start).total_seconds() if span_s is None else span_s

    def share(column: str) -> float | None:
        values = c[column][answered]
        known = values[~np.isnan(values)]
        return float(known.mean()) if len(known) else None

    def quantile(column: str, q: float, scale: float = 1.0) -> float | None:
        values = c[column][answered]
        known = values[~np.isnan(values)]
        return float(np.quantile(known, q)) * scale if len(known) else None

    nulls = c["null_fields"][answered]
    nulls = nulls[~np.isnan(nulls)]
    counts = labels or Counter()
    labelled = sum(counts.values())
    metrics: dict[str, Any] = {
        "requests": requests,
        "answers": answers,
        "requests_per_minute": requests / max(span_s / 60.0, 1e-9),
        "schema_valid_rate": share("valid"),
        "guard_replaced_rate": share("replaced"),
        "refusal_rate": share("refused"),
        "escalation_rate": share("escalate"),
        "error_rate": float(1 - answered.mean()) if requests else None,
        "null_field_rate": float(nulls.sum() / (len(nulls) * fields)) if len(nulls) and fields else None,
        "flagged_rate": share("flagged"),
        "confidence_p10": quantile("confidence", 0.10),
        "confidence_p50": quantile("confidence", 0.50),
        "latency_p50_ms": quantile("latency_ms", 0.50),
        "latency_p95_ms": quantile("latency_ms", 0.95),
        "latency_p99_ms": quantile("latency_ms", 0.99),
        "ttft_p50_ms": quantile("ttft_ms", 0.50),
        "ttft_p95_ms": quantile("ttft_ms", 0.95),
        "inter_token_p50_ms": quantile("itl_ms", 0.50),
        "inter_token_p95_ms": quantile("itl_ms", 0.95),
        "labels": dict(sorted(counts.items())),
    }
    for label, count in counts.items():
        metrics[f"label_share.{label}"] = count / labelled
    return metrics


def confidences(traffic: Traffic, mask: np.ndarray | None = None) -> np.ndarray:
    """The known confidences of the answered rows in `mask`."""
    values = traffic.columns["confidence"] if mask is None else traffic.columns["confidence"][mask]
    errors = traffic.columns["error"] if mask is None else traffic.columns["error"][mask]
    values = values[errors == 0]
    return values[~np.isnan(values)]


def since(now: datetime, seconds: float) -> datetime:
    return now - timedelta(seconds=seconds)
