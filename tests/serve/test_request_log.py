"""The request log: named migrations, one row per request, no text columns."""

from __future__ import annotations

import sqlite3

from slmkit.monitor import RequestLog, RequestRecord

# Every column the log may have. A new one must be added here on purpose: text never reaches it.
ALLOWED_COLUMNS = {
    "id", "ts", "request_id", "model_ref", "release_name", "release_version", "latency_ms", "prompt_tokens",
    "completion_tokens", "valid", "refused", "replaced", "attempts", "escalate", "outcome", "error_kind",
}  # fmt: skip


def test_migrations_are_named_and_applied_once(tmp_path) -> None:
    path = tmp_path / "requests.db"
    with RequestLog(path) as log:
        assert log.migrate() == []  # already applied when opened
        assert set(log.columns()) == ALLOWED_COLUMNS
    with RequestLog(path) as again:
        assert again.count() == 0
    names = [r[0] for r in sqlite3.connect(path).execute("SELECT name FROM schema_migrations")]
    assert names == ["0001_requests"]
    assert sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_rows_round_trip_with_flags_as_bools(tmp_path) -> None:
    with RequestLog(tmp_path / "requests.db") as log:
        ok = RequestRecord(
            "chatcmpl-1", "support-tickets", 12.5, "refused", "support-tickets", 2, 600, 24,
            valid=False, refused=True, replaced=True, attempts=2, escalate=False,
        )  # fmt: skip
        error = RequestRecord("chatcmpl-2", "nope", 1.0, "error", error_kind="unknown_model")
        assert log.append([ok, error]) == 2
        newest, oldest = log.rows()
    assert oldest["request_id"] == "chatcmpl-1" and oldest["release_version"] == 2
    assert oldest["replaced"] is True and oldest["valid"] is False and oldest["attempts"] == 2
    assert newest["outcome"] == "error" and newest["error_kind"] == "unknown_model" and newest["valid"] is None
