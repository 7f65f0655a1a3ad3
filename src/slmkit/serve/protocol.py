"""The OpenAI chat-completions wire format: requests in; completions, chunks, models and errors out.

Only shapes live here, no behaviour: what the official `openai` client sends and expects.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message text; content parts other than text (images, audio) are dropped."""
        if isinstance(self.content, list):
            return "".join(str(part.get("text", "")) for part in self.content if part.get("type") == "text")
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    # Clients send many optional OpenAI fields (top_p, user, seed, ...): accepted and ignored.
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, gt=0)
    max_completion_tokens: int | None = Field(None, gt=0)
    n: int | None = 1
    # Refused outside OpenAI's range, as OpenAI does (the engine's retries choose their own).
    temperature: float | None = Field(None, ge=0.0, le=2.0)
    stream: bool | None = False
    stream_options: StreamOptions | None = None


class APIError(Exception):
    """An error answered in the OpenAI format: {"error": {message, type, param, code}}."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.param = param
        self.release: str | None = None  # the release the request had resolved to, for the metrics

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def parse_chat_request(body: bytes) -> ChatCompletionRequest:
    """Validate a request body; a clear 400 naming the field when it is not a chat request."""
    try:
        raw = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise APIError(400, f"the request body is not valid JSON ({exc})", code="invalid_json") from None
    if not isinstance(raw, dict):
        raise APIError(400, "the request body must be a JSON object", code="invalid_json")
    try:
        request = ChatCompletionRequest.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise APIError(400, f"invalid request: {where}: {first['msg']}", param=where, code="invalid_value") from None
    if request.n not in (None, 1):
        raise APIError(400, f"n={request.n} is not supported; this server returns one answer (n=1)", param="n")
    return request


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion_body(
    *,
    request_id: str,
    model: str,
    content: str,
    finish_reason: str,
    prompt_tokens: int,
    completion_tokens: int,
    extras: dict[str, Any],
) -> dict[str, Any]:
    """A chat.completion object plus the top-level `slmkit` extras."""
    return {
        "id": request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage(prompt_tokens, completion_tokens),
        "slmkit": extras,
    }


def chunk_body(
    *,
    request_id: str,
    model: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    extras: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One chat.completion.chunk; the last one carries finish_reason and the `slmkit` extras."""
    body: dict[str, Any] = {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if extras is not None:
        body["slmkit"] = extras
    return body


def usage_chunk_body(
    *, request_id: str, model: str, created: int, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    """The extra chunk OpenAI sends when stream_options.include_usage is set: no choices, usage only."""
    return {
        "id": request_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def sse(body: dict[str, Any] | str) -> str:
    """One server-sent event in the framing the OpenAI clients read."""
    data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return f"data: {data}\n\n"


def model_card(model_id: str, created: int) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "slmkit"}


def models_body(cards: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": cards}
