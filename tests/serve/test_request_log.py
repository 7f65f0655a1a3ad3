"""The request log: named migrations, one row per request, no text columns."""

from __future__ import annotations

import sqlite3

from slmkit.monitor import RequestLog, RequestRecord

# Every column the log may have. A new one must be added here on purpose: text never reaches it.
# `label` is one of the schema's enum values; `embedding` is 384 int8 numbers of the redacted input.
ALLOWED_COLUMNS = {
    "id", "ts", "request_id", "model_ref", "release_name", "release_version", "latency_ms", "prompt_tokens",
    "completion_tokens", "valid", "refused", "replaced", "attempts", "escalate", "outcome", "error_kind", "api_key",
    "label", "null_fields", "confidence", "ttft_ms", "itl_ms", "embedding", "novelty", "flagged",
}  # fmt: skip


def test_migrations_are_named_and_applied_once(tmp_path) -> None:
    path = tmp_path / "requests.db"
    with RequestLog(path) as log:
        assert log.migrate() == []  # already applied when opened
        assert set(log.columns()) == ALLOWED_COLUMNS
    with RequestLog(path) as again:
        assert again.count() == 0
    names = [r[0] for r in sqlite3.connect(path).execute("SELECT name FROM schema_migrations")]
    assert names == [
        "0001_requests", "0002_api_key", "0003_signals", "0004_captures", "0005_alerts", "0006_traffic_review",
    ]  # fmt: skip
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


def test_a_log_written_before_keys_were_logged_is_migrated_and_keeps_its_rows(tmp_path) -> None:
    from slmkit.monitor.requests import MIGRATIONS, apply_migrations

    path = tmp_path / "requests.db"
    old = sqlite3.connect(path, isolation_level=None)
    apply_migrations(old, MIGRATIONS[:1])  # the log as the first release of the server wrote it
    old.execute(
        "INSERT INTO requests (ts, request_id, model_ref, latency_ms, outcome) "
        "VALUES ('2026-01-01T00:00:00.000Z', 'chatcmpl-old', 'support-tickets', 5.0, 'ok')"
    )
    old.close()
    with RequestLog(path) as log:
        log.record(RequestRecord("chatcmpl-new", "support-tickets", 7.0, "ok", api_key="billing-app"))
        newest, oldest = log.rows()
        assert log.rows(api_key="billing-app") == [newest]
    assert oldest["request_id"] == "chatcmpl-old" and oldest["api_key"] is None
    assert newest["api_key"] == "billing-app"


def test_an_api_key_name_that_is_personal_data_is_redacted(tmp_path) -> None:
    with RequestLog(tmp_path / "requests.db") as log:
        log.record(RequestRecord("chatcmpl-1", "support-tickets", 1.0, "ok", api_key="jane.doe@example.com"))
        log.record(RequestRecord("chatcmpl-2", "support-tickets", 1.0, "ok", api_key="billing-app"))
        rows = log.rows()
        mine = log.rows(api_key="jane.doe@example.com")  # the name the operator gave the key
    assert rows[-1]["api_key"] == "<EMAIL_1>"
    assert [r["request_id"] for r in mine] == ["chatcmpl-1"]
