"""Replay recorded requests through a running server with the official `openai` client (the drift drill).

A request file is JSONL: each line a record of the task's input fields ({"subject": ...,
"body": ...}), sent as the user message the way a client sends one, or {"messages": [...]}
sent as it is. Other keys (an expected "output", a "shift" tag) are not sent.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmkit.errors import DataError


def read_requests(path: Path, input_fields: Sequence[str]) -> list[list[dict[str, str]]]:
    """The messages of each line of a JSONL request file; a bad line is an error naming it."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise DataError(f"{path}:{number}: not JSON ({exc})", hint="one JSON object per line") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: a JSON object is needed, got {type(record).__name__}")
        if "messages" in record:
            out.append([{"role": str(m["role"]), "content": str(m["content"])} for m in record["messages"]])
            continue
        fields = {k: record[k] for k in input_fields if k in record}
        if not fields:
            raise DataError(
                f"{path}:{number}: none of the task's input fields ({', '.join(input_fields)}) and no 'messages'",
                hint='write each request as a record of the input fields, or as {"messages": [...]}',
            )
        out.append([{"role": "user", "content": json.dumps(fields, ensure_ascii=False)}])
    return out


@dataclass
class ReplayStats:
    sent: int = 0
    answered: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    releases: dict[str, int] = field(default_factory=dict)  # which release answered how many


def replay(
    base_url: str,
    model: str,
    requests: Sequence[list[dict[str, str]]],
    *,
    api_key: str | None = None,
    concurrency: int = 8,
    on_answer: Callable[[int, Any], None] | None = None,
) -> ReplayStats:
    """Send every request (`concurrency` at a time); `on_answer(i, reply_or_exception)` after each."""
    from openai import OpenAI

    client = OpenAI(base_url=base_url, api_key=api_key or "unused", max_retries=3, timeout=600)
    stats = ReplayStats()
    lock = threading.Lock()
    began = time.perf_counter()

    def send(i: int) -> None:
        try:
            reply: Any = client.chat.completions.create(model=model, messages=requests[i])  # type: ignore[arg-type]
        except Exception as exc:
            with lock:
                stats.sent += 1
                kind = type(exc).__name__
                stats.errors[kind] = stats.errors.get(kind, 0) + 1
            reply = exc
        else:
            with lock:
                stats.sent += 1
                stats.answered += 1
                stats.releases[reply.model] = stats.releases.get(reply.model, 0) + 1
        if on_answer is not None:
            on_answer(i, reply)

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(send, range(len(requests))))
    stats.seconds = time.perf_counter() - began
    return stats
