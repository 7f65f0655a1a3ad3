"""Capture for review: which requests are kept, what the redactor leaves of them, and retention."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from slmkit.config import PiiConfig
from slmkit.monitor import RequestLog, RequestRecord
from slmkit.monitor.capture import Redactor, capture_row, purge_expired, sampled
from tests.monitor.conftest import T0

EMAIL, PHONE, CARD = "jane.doe@example.com", "(415) 555-0134", "4111 1111 1111 1111"


def test_the_captured_share_is_decided_by_the_request_id() -> None:
    ids = [f"chatcmpl-{i}" for i in range(4000)]
    kept = [i for i in ids if sampled(i, 0.1)]
    assert 340 <= len(kept) <= 460  # 10% of 4000, give or take three standard deviations
    assert kept == [i for i in ids if sampled(i, 0.1)]  # the same choice every time, in every process
    assert set(kept) <= {i for i in ids if sampled(i, 0.5)}  # a larger share keeps what a smaller one kept
    assert not any(sampled(i, 0.0) for i in ids) and all(sampled(i, 1.0) for i in ids)


def test_a_captured_request_is_redacted_before_it_is_written_with_one_placeholder_per_value() -> None:
    redactor = Redactor(PiiConfig(keep=["Lumora"]))
    record = json.dumps({"subject": "refund", "body": f"Hi Lumora, write to {EMAIL} or call {PHONE}. Card {CARD}."})
    messages = [
        {"role": "user", "content": f"earlier question from {EMAIL}"},
        {"role": "assistant", "content": "How can I help?"},
        {"role": "user", "content": record},
    ]
    answer = json.dumps({"category": "billing", "note": f"reply to {EMAIL}"})
    row = capture_row(RequestRecord("chatcmpl-7", "support-tickets", 12.0, "ok", ts="2026-12-01T09:00:00.000Z"),
                      messages, answer, redactor)  # fmt: skip

    stored = json.dumps([row.messages, row.answer])
    assert EMAIL not in stored and "555-0134" not in stored and "4111" not in stored
    turns = json.loads(row.messages)
    assert turns[0] == {"role": "user", "content": "earlier question from <EMAIL_1>"}
    assert turns[1] == {"role": "assistant", "content": "How can I help?"}
    # The record stays a record, its values redacted; the same address is <EMAIL_1> everywhere.
    assert turns[2]["content"] == {
        "subject": "refund",
        "body": "Hi Lumora, write to <EMAIL_1> or call <PHONE_1>. Card <CARD_1>.",
    }
    assert json.loads(row.answer or "") == {"category": "billing", "note": "reply to <EMAIL_1>"}
    assert json.loads(row.redactions) == {"CARD": 1, "EMAIL": 3, "PHONE": 1}


def test_captures_past_their_retention_are_deleted_and_gone_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "requests.db"
    redactor = Redactor(PiiConfig())
    secret_old = "a very old ticket about an ice-blue toaster"
    with RequestLog(path) as log:
        rows = []
        for days, text in ((40, secret_old), (10, "a recent ticket")):
            ts = (T0 - timedelta(days=days)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
            record = RequestRecord(f"chatcmpl-{days}", "support-tickets", 5.0, "ok", ts=ts)
            rows.append(capture_row(record, [{"role": "user", "content": text}], "{}", redactor))
        log.append([], rows)
        assert secret_old.encode() in path.read_bytes() + (tmp_path / "requests.db-wal").read_bytes()

        assert purge_expired(log, retention_days=30, now=T0) == 1
        assert [c["request_id"] for c in log.captures()] == ["chatcmpl-10"]
        # Overwritten (secure_delete) and checkpointed: not in a free page, not in the write-ahead log.
        assert secret_old.encode() not in path.read_bytes() + (tmp_path / "requests.db-wal").read_bytes()


def test_embeddings_past_their_retention_are_erased_and_the_rows_stay(tmp_path: Path) -> None:
    with RequestLog(tmp_path / "requests.db") as log:
        rows = [
            RequestRecord(f"chatcmpl-{days}", "support-tickets", 5.0, "ok", embedding=bytes(384),
                          ts=(T0 - timedelta(days=days)).isoformat(timespec="milliseconds").replace("+00:00", "Z"))
            for days in (100, 5)
        ]  # fmt: skip
        log.append(rows)
        purge_expired(log, retention_days=30, now=T0, embedding_retention_days=90)
        kept = {row["request_id"]: row["embedding"] for row in log.rows()}
    assert kept == {"chatcmpl-100": None, "chatcmpl-5": bytes(384)}
