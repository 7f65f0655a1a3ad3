"""The HTTP surface: a thin FastAPI router over ChatService, in the OpenAI wire format.

Routes only read the request, call the service and shape the reply; every error, including
unknown routes and oversized bodies, answers in the OpenAI error format the clients parse.
Every /v1 route checks the API key (while keys are on); /metrics is open unless
serve.metrics_require_key; /health answers a bare liveness to anyone and its details only to a
key (or, with keys off, to this machine). A chat request's body is read first, within
serve.body_timeout_s (408 past it); only then does it count against serve.max_concurrent, so
slow uploads hold no slot. One more request than that is refused at once (429 with Retry-After)
rather than queued without bound. A client that hangs up has its generation stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from slmkit import __version__
from slmkit.serve.keys import ApiKey
from slmkit.serve.metrics import error_kind
from slmkit.serve.protocol import (
    APIError,
    chunk_body,
    completion_body,
    completion_id,
    model_card,
    models_body,
    sse,
    usage_chunk_body,
)
from slmkit.serve.service import Answer, ChatService

log = logging.getLogger("slmkit.serve")

STREAM_PIECES = 4  # a validated answer is sent in a few chunks, so streaming clients see deltas
RETRY_AFTER_S = 1  # what a 429 asks clients to wait: an answer takes about a second here


def create_app(service: ChatService) -> FastAPI:
    app = FastAPI(title="slmkit", version=__version__, docs_url=None, redoc_url=None, openapi_url=None)
    serve = service.config.serve
    limit = serve.max_request_bytes

    @app.exception_handler(APIError)
    async def api_error(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(APIError(exc.status_code, str(exc.detail)).body(), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def internal_error(_: Request, exc: Exception) -> JSONResponse:
        log.error("internal error: %s", type(exc).__name__)  # uvicorn logs the traceback
        error = APIError(500, "internal server error; see the server log", kind="server_error")
        return JSONResponse(error.body(), status_code=500)

    @app.get("/health")
    async def health(request: Request) -> dict[str, Any]:
        client = request.client.host if request.client else None
        if service.health_details_allowed(request.headers.get("authorization"), client):
            return service.health()
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        if serve.metrics_require_key:
            service.authorize(request.headers.get("authorization"))
        return Response(service.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/models")
    async def list_models(request: Request) -> dict[str, Any]:
        key = service.authorize(request.headers.get("authorization"))
        return models_body(service.model_cards(key))

    @app.get("/v1/models/{model_id:path}")
    async def retrieve_model(model_id: str, request: Request) -> dict[str, Any]:
        key = service.authorize(request.headers.get("authorization"))
        for card in service.model_cards(key):
            if card["id"] == model_id:
                return card
        release = service.resolve(model_id, key)  # raises the 403, or the 404 that lists the models
        return model_card(model_id, int(time.time())) | {"release": release.ref}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: Request) -> Response:
        received = time.perf_counter()
        request_id = completion_id()
        headers = {"x-request-id": request_id}
        key: ApiKey | None = None
        try:  # refused before the service sees the request: logged and counted here
            key = service.authorize(request.headers.get("authorization"))
            # The whole body first: a slow upload holds a connection, never an in-flight slot.
            body = await _read_body(request, limit, serve.body_timeout_s)
            if service.in_flight >= serve.max_concurrent:
                raise APIError(
                    429,
                    f"too many requests in flight ({serve.max_concurrent}, serve.max_concurrent); "
                    f"retry in {RETRY_AFTER_S}s",
                    kind="server_error",
                    code="overloaded",
                )
        except APIError as exc:
            return refused(exc, request_id, received, headers, key)
        service.in_flight += 1
        try:  # whatever happens below, even a client going away, the slot is given back
            return await respond(request, body, key, request_id, received, headers)
        finally:
            service.in_flight -= 1

    async def respond(
        request: Request, body: bytes, key: ApiKey | None, request_id: str, received: float, headers: dict[str, str]
    ) -> Response:
        try:
            answer = await _unless_disconnected(
                request, service.chat(body, request_id=request_id, received=received, key=key)
            )
        except APIError as exc:
            service.metrics.failed(exc.release, exc.status, exc.code)
            return error_response(exc, headers)
        except asyncio.CancelledError:  # the client went away; the service logged the row
            service.metrics.failed(None, 499)
            raise
        except Exception:
            # The traceback goes to the server log, never the request text (it may be personal data).
            log.exception("request %s failed", request_id)
            error = APIError(500, f"internal error (request {request_id}); see the server log", kind="server_error")
            return refused(error, request_id, received, headers, key)
        if answer is None:  # the client hung up: its generation was stopped, nobody reads a reply
            service.metrics.failed(None, 499)
            return Response(status_code=499)
        service.metrics.answered(answer.outcome, received)
        if answer.request.stream:
            return StreamingResponse(_stream(answer), media_type="text/event-stream", headers=headers)
        payload = completion_body(
            request_id=answer.request_id,
            model=answer.model,
            content=answer.content,
            finish_reason=answer.outcome.finish_reason,
            prompt_tokens=answer.outcome.prompt_tokens,
            completion_tokens=answer.outcome.completion_tokens,
            extras=answer.extras(),
        )
        return JSONResponse(payload, headers=headers)

    def refused(
        exc: APIError, request_id: str, received: float, headers: dict[str, str], key: ApiKey | None = None
    ) -> JSONResponse:
        """An error the service never saw: logged (without text) and counted here."""
        service.record_error(
            request_id, "", received, error_kind(exc.status, exc.code), api_key=key.name if key else None
        )
        service.metrics.failed(None, exc.status, exc.code)
        return error_response(exc, headers)

    return app


def error_response(exc: APIError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The OpenAI error body, with the headers clients act on: Retry-After (429), WWW-Authenticate (401)."""
    headers = dict(headers or {})
    if exc.status == 429:
        headers["Retry-After"] = str(RETRY_AFTER_S)
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def _read_body(request: Request, limit: int, timeout_s: float) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` (before reading it all when declared),
    and with 408 when it has not all arrived within `timeout_s`."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise APIError(413, f"the request body is {declared} bytes; the limit is {limit}", code="request_too_large")

    async def read() -> bytes:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise APIError(413, f"the request body is over the limit of {limit} bytes", code="request_too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    try:
        return await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        raise APIError(
            408, f"the request body did not arrive within {timeout_s:g}s (serve.body_timeout_s)", code="body_timeout"
        ) from None


async def _unless_disconnected(request: Request, work: Awaitable[Answer]) -> Answer | None:
    """Await `work`, cancelling it (and so its generation) if the client hangs up first; None then.

    The body has been read, so the next message from the server is the disconnect, if it comes.
    """

    async def hung_up() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    task, watch = asyncio.ensure_future(work), asyncio.ensure_future(hung_up())
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None
    finally:
        for pending in (task, watch):
            pending.cancel()


async def _stream(answer: Answer) -> AsyncIterator[str]:
    """The answer as server-sent events in the OpenAI chunk format, ending with `data: [DONE]`.

    Nothing is streamed while the model generates: the guard must see the whole answer (a
    structured answer is valid only as a whole, and may be regenerated or replaced), so the
    validated content is sent in a few chunks once it is final. The last chunk carries the
    finish_reason and the `slmkit` extras.
    """
    created = int(time.time())
    ids: dict[str, Any] = {"request_id": answer.request_id, "model": answer.model, "created": created}
    yield sse(chunk_body(**ids, delta={"role": "assistant", "content": ""}))
    content = answer.content
    step = max(1, -(-len(content) // STREAM_PIECES))
    for start in range(0, len(content), step):
        yield sse(chunk_body(**ids, delta={"content": content[start : start + step]}))
    yield sse(chunk_body(**ids, delta={}, finish_reason=answer.outcome.finish_reason, extras=answer.extras()))
    options = answer.request.stream_options
    if options is not None and options.include_usage:
        outcome = answer.outcome
        yield sse(
            usage_chunk_body(**ids, prompt_tokens=outcome.prompt_tokens, completion_tokens=outcome.completion_tokens)
        )
    yield sse("[DONE]")
