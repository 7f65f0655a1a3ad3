"""The teacher behind `slmkit synth`: an OpenAI-compatible chat endpoint, and the journal of its replies.

Every request is named by its prompt hash: the sha256 of the model name, the messages, the reply
schema, the temperature, the token limit and the sample's seed. A reply is appended to the
journal (`.slmkit/synth/journal.jsonl`, one JSON line, flushed and fsynced) the moment it
arrives, so a run killed halfway is resumed by running it again: every request already in the
journal is answered from there and costs nothing. A call that failed in transport is not
journaled (nothing was paid for), and the next run asks again.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from slmkit.errors import StageError

CHARS_PER_TOKEN = 4  # the estimate before a run; the server's usage counts are reported after


@dataclass(frozen=True)
class TeacherRequest:
    """One chat call. `key` is its prompt hash; `meta` says what it is for and is not hashed."""

    key: str
    model: str
    messages: tuple[dict[str, str], ...]
    schema: dict[str, Any] | None  # the JSON shape asked for
    temperature: float
    max_tokens: int
    seed: int
    meta: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def make(
        cls,
        *,
        model: str,
        messages: Sequence[dict[str, str]],
        schema: dict[str, Any] | None,
        temperature: float,
        max_tokens: int,
        seed: int,
        meta: dict[str, Any] | None = None,
    ) -> TeacherRequest:
        hashed = {
            "model": model,
            "messages": list(messages),
            "schema": schema,
            "temperature": temperature,
            "max_tokens": max_tokens,
            "seed": seed,
        }
        key = hashlib.sha256(json.dumps(hashed, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
        return cls(key, model, tuple(messages), schema, temperature, max_tokens, seed, meta or {})

    def prompt_chars(self) -> int:
        return sum(len(m["content"]) for m in self.messages)


@dataclass(frozen=True)
class Reply:
    """A teacher's answer to one request, or why there is none (`error`: a transport failure)."""

    key: str
    text: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    finish_reason: str | None = None
    error: str | None = None
    cached: bool = False  # read from the journal: paid for by an earlier run


class Teacher(Protocol):
    """Anything that answers a chat request: a server (OpenAITeacher) or, in tests, a template."""

    model: str
    endpoint: str

    def answer(self, request: TeacherRequest) -> Reply: ...


class OpenAITeacher:
    """A model behind an OpenAI-compatible /v1/chat/completions, through the official `openai` client."""

    def __init__(
        self,
        endpoint: str,
        model: str,
        *,
        api_key_env: str | None = None,
        timeout_s: float = 120.0,
        max_retries: int = 2,
        structured: bool = True,
    ) -> None:
        from openai import OpenAI

        key = os.environ.get(api_key_env, "") if api_key_env else ""
        if api_key_env and not key:
            raise StageError(
                f"synth.teacher.api_key_env names {api_key_env}, which is not set",
                hint=f"export {api_key_env}=<the teacher's key>, or unset the setting",
            )
        self.endpoint = endpoint
        self.model = model
        self.max_retries = max_retries
        self._structured = structured  # flips off once when the server refuses response_format
        # The client's own retries would also repeat 4xx/5xx answers; ours repeat transport failures only.
        self._client = OpenAI(base_url=endpoint, api_key=key or "none", timeout=timeout_s, max_retries=0)

    def answer(self, request: TeacherRequest) -> Reply:
        import openai

        tries, failure = 0, ""
        while tries <= self.max_retries:
            structured = self._structured and request.schema is not None
            extra: dict[str, Any] = {}
            if structured:
                extra["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "reply", "schema": request.schema},
                }
            began = time.perf_counter()
            try:
                reply = self._client.chat.completions.create(
                    model=request.model,
                    messages=list(request.messages),  # type: ignore[arg-type]
                    temperature=request.temperature,
                    max_tokens=request.max_tokens,
                    seed=request.seed,
                    **extra,
                )
            except openai.BadRequestError as exc:
                if structured and "response_format" in str(exc):
                    self._structured = False
                    continue
                return Reply(request.key, None, error=f"the teacher refused the request: {exc}")
            except openai.APIConnectionError as exc:  # timeouts too: worth another try
                tries, failure = tries + 1, f"{type(exc).__name__}: {exc}"
                continue
            except openai.APIStatusError as exc:
                return Reply(request.key, None, error=f"the teacher answered HTTP {exc.status_code}: {exc.message}")
            seconds = time.perf_counter() - began
            choice = reply.choices[0] if reply.choices else None
            usage = reply.usage
            return Reply(
                request.key,
                (choice.message.content or "") if choice else "",
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=usage.completion_tokens if usage else 0,
                seconds=round(seconds, 3),
                finish_reason=choice.finish_reason if choice else None,
            )
        return Reply(request.key, None, error=f"no answer after {tries} tries ({failure})")


class Journal:
    """Replies already paid for, by prompt hash: a JSONL file appended one fsynced line per reply."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.replies: dict[str, Reply] = {}
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        good = 0  # bytes of whole, readable lines
        for line in data.splitlines(keepends=True):
            if not line.endswith(b"\n"):
                break  # a line cut short by a crash: dropped, and the call is made again
            try:
                record = json.loads(line)
                reply = Reply(**{**record, "cached": True})
            except (json.JSONDecodeError, TypeError):
                break
            self.replies[reply.key] = reply
            good += len(line)
        if good < len(data):
            with self.path.open("r+b") as fh:
                fh.truncate(good)

    def get(self, key: str) -> Reply | None:
        return self.replies.get(key)

    def add(self, reply: Reply) -> None:
        record = {k: v for k, v in asdict(reply).items() if k != "cached"}
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self._lock:
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            self.replies[reply.key] = reply

    def mean_seconds(self) -> float | None:
        """Average seconds per call in the journal, for the time estimate before a run."""
        seconds = [r.seconds for r in self.replies.values() if r.seconds > 0]
        return sum(seconds) / len(seconds) if seconds else None


@dataclass
class Meter:
    """What the teacher (and the judge) cost in one run: calls, tokens, wall time."""

    calls: int = 0
    cached: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    def add(self, reply: Reply) -> None:
        if reply.cached:
            self.cached += 1
            return
        self.calls += 1
        if reply.error is not None:
            self.failed += 1
        self.prompt_tokens += reply.prompt_tokens
        self.completion_tokens += reply.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def ask_all(
    teacher: Teacher,
    journal: Journal,
    requests: Sequence[TeacherRequest],
    *,
    concurrency: int,
    budget: int,
    meter: Meter,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[dict[str, Reply], int]:
    """Replies to `requests` (journal first, then at most `budget` new calls, in request order).

    Returns the replies by prompt hash and the number of new calls made; requests past the
    budget get no reply (the caller says they are left for a later run).
    """
    replies: dict[str, Reply] = {}
    new: list[TeacherRequest] = []
    asked: set[str] = set()
    for request in requests:
        if request.key in replies or request.key in asked:
            continue
        cached = journal.get(request.key)
        if cached is not None:
            replies[request.key] = cached
            meter.add(cached)
        elif len(new) < budget:
            new.append(request)
            asked.add(request.key)
    began = time.perf_counter()
    done = 0

    def one(request: TeacherRequest) -> Reply:
        reply = teacher.answer(request)
        if reply.error is None:
            journal.add(reply)
        return reply

    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for reply in pool.map(one, new):
            replies[reply.key] = reply
            meter.add(reply)
            done += 1
            if progress is not None:
                progress(done, len(new))
    meter.seconds += time.perf_counter() - began
    return replies, len(new)
