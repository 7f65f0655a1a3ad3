"""Opt-in capture of production traffic for review (`monitor.capture: {share, retention_days}`).

Off by default (share 0). When on, a share of answered requests is kept in the `captures` table
of requests.db: the request's user and assistant turns and the answer returned, with the
answer's label, confidence and whether its input was flagged as unlike training. Everything is
passed through the data stage's PII redactor *before* it is written, with one placeholder per
value across the turns and the answer (the same address is `<EMAIL_1>` everywhere), so nothing
unredacted ever reaches the disk. A JSON record sent as a message ({"subject": ..., "body":
...}) is redacted value by value and stays a record, so the review and retraining stage can
read its fields back.

Which requests are kept is decided by a hash of the request id, not a random draw: the choice
is the same in every process and can be checked afterwards. Captures older than
`retention_days` are deleted (`purge_expired`, run by the server every hour and by `slmkit
monitor`); the connection's `secure_delete` overwrites them in the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from slmkit.config import PII_ENTITIES, PiiConfig
from slmkit.monitor.requests import CaptureRow, RequestLog, RequestRecord


def sampled(request_id: str, share: float) -> bool:
    """Whether a request falls in the captured share: its id's sha256, read as a number in [0, 1)."""
    if share <= 0:
        return False
    if share >= 1:
        return True
    value = int.from_bytes(hashlib.sha256(request_id.encode()).digest()[:8], "big") / 2**64
    return value < share


class Redactor:
    """The data stage's PII scrubber with every kind it knows switched on, whatever data.pii says.

    A project may keep some kinds in its training data on purpose; traffic kept for review is
    another matter. The project's `keep` list and name detection setting still apply.
    """

    def __init__(self, pii: PiiConfig) -> None:
        from slmkit.data.pii import PiiScrubber

        # Every kind; NAME only finds names when pii.ner is "names" (a gazetteer the project opts into).
        self._scrubber = PiiScrubber(pii.model_copy(update={"enabled": True, "entities": list(PII_ENTITIES)}))

    def text(self, text: str) -> str:
        """One text, with its own placeholders (an input before it is embedded)."""
        return self._scrubber.scrub(text)

    def request(
        self, messages: Sequence[dict[str, str]], answer: str | None
    ) -> tuple[list[dict[str, Any]], Any, dict[str, int]]:
        """The turns and the answer, redacted together; JSON records redacted field by field.

        Returns (messages, answer, {kind: replacements}). A message whose content is a JSON
        object comes back with that object as its content.
        """
        contents = [_as_json(m.get("content", "")) for m in messages]
        answer_value = _as_json(answer) if answer is not None else None
        _, scrubbed, counts = self._scrubber.scrub_row({}, {"messages": contents, "answer": answer_value})
        turns = [
            {"role": m.get("role", "user"), "content": content}
            for m, content in zip(messages, scrubbed["messages"], strict=True)
        ]
        return turns, scrubbed["answer"], dict(counts)


def capture_row(
    record: RequestRecord, messages: Sequence[dict[str, str]], answer: str | None, redactor: Redactor
) -> CaptureRow:
    """A captured request, redacted, for the `captures` table."""
    turns, redacted_answer, counts = redactor.request(messages, answer)
    return CaptureRow(
        request_id=record.request_id,
        ts=record.ts,
        release_name=record.release_name,
        release_version=record.release_version,
        messages=json.dumps(turns, ensure_ascii=False),
        answer=None if redacted_answer is None else _as_text(redacted_answer),
        label=record.label,
        confidence=record.confidence,
        valid=record.valid,
        refused=record.refused,
        escalate=record.escalate,
        flagged=record.flagged,
        novelty=record.novelty,
        redactions=json.dumps(counts, sort_keys=True),
    )


def purge_expired(
    log: RequestLog,
    retention_days: float,
    now: datetime | None = None,
    *,
    embedding_retention_days: float | None = None,
) -> int:
    """Delete captures that arrived more than `retention_days` ago (and erase embeddings older than
    `embedding_retention_days`, when given); returns how many captures went."""
    now = now or datetime.now(UTC)

    def stamp(days: float) -> str:
        return (now - timedelta(days=days)).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    erased = 0
    with log.transaction() as conn:
        deleted = conn.execute("DELETE FROM captures WHERE ts < ?", (stamp(retention_days),)).rowcount
        # A queued request nobody reviewed is still only captured traffic: it goes when its capture would.
        # A reviewed one is training data from then on (see monitor.queue) and stays.
        unreviewed = conn.execute(
            "DELETE FROM review_queue WHERE ts < ? AND request_id NOT IN (SELECT request_id FROM review_answers)",
            (stamp(retention_days),),
        ).rowcount
        if embedding_retention_days is not None:
            erased = conn.execute(
                "UPDATE requests SET embedding = NULL WHERE ts < ? AND embedding IS NOT NULL",
                (stamp(embedding_retention_days),),
            ).rowcount
    if deleted or erased or unreviewed:
        # The old pages would otherwise linger in the write-ahead log until its next checkpoint.
        log.read("PRAGMA wal_checkpoint(TRUNCATE)")
    return int(deleted)


def _as_json(text: str) -> Any:
    """A JSON object or array when the text is one (a record, an answer), else the text itself."""
    stripped = text.strip()
    if stripped[:1] in ("{", "["):
        try:
            value = json.loads(stripped)
        except ValueError:
            return text
        if isinstance(value, dict | list):
            return value
    return text


def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
