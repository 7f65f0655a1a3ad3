"""What the server does for one request: resolve the release, read the input, queue it, answer.

Each request resolves its model (`name`, `name@3`, `name@staging`) to one immutable release
version when it arrives and runs entirely on that version, so `slmkit rollback` or a new
release takes effect on the next request, with no restart. The task spec comes from the
release's recorded config, and client system messages are ignored: the adapter was trained
with its task's own system prompt, so that is the one it always gets. The last user message is
the input; the user and assistant turns before it go into the prompt as the conversation so
far, after the system prompt, as chat-log training examples carry theirs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slmkit.config import ProjectConfig, is_loopback_host
from slmkit.errors import RegistryError, SlmkitError
from slmkit.monitor import RequestRecord
from slmkit.registry import Registry, Release
from slmkit.serve.engine import Engine, EngineBusy, Job, Outcome, PromptTooLong
from slmkit.serve.keys import ApiKey, KeyStore
from slmkit.serve.metrics import ServeMetrics, error_kind
from slmkit.serve.monitoring import start_monitoring
from slmkit.serve.processes import EngineUnavailable
from slmkit.serve.protocol import APIError, ChatCompletionRequest, ChatMessage, model_card, parse_chat_request
from slmkit.serve.releases import ModelCache, ModelKey, ReleaseSpec, open_backend, release_spec
from slmkit.task import Task

log = logging.getLogger("slmkit.serve")

# No tokenizer packs more characters than this into one token on average: a longer conversation
# is refused without tokenizing it (the engine counts the exact tokens of everything shorter).
MAX_CHARS_PER_TOKEN = 32


@dataclass(frozen=True)
class Answer:
    request_id: str
    request: ChatCompletionRequest
    outcome: Outcome
    # A retrieval task: what the request was given, and the output field its citations are in.
    context: list[dict[str, Any]] | None = None
    citations_field: str | None = None

    @property
    def model(self) -> str:
        return self.outcome.release.ref  # the version that answered, never the alias asked for

    @property
    def content(self) -> str:
        assert self.outcome.guard.content is not None  # the service answers 502 before that
        return self.outcome.guard.content

    def extras(self) -> dict[str, Any]:
        """The top-level `slmkit` object of a response: which release answered and what the guard did."""
        guard = self.outcome.guard
        return {
            "release": self.model,
            "valid": guard.valid_first,
            "constrained": self.outcome.constrained,
            "refused": guard.refused,
            "guard": {"replaced": guard.replaced, "attempts": guard.attempts, "reason": guard.reason},
            "escalate": self.outcome.escalation is not None,
            "escalation_reason": self.outcome.escalation,
            **self._retrieval(),
        }

    def _retrieval(self) -> dict[str, Any]:
        """`citations`: what each cited ref is (document, title, section, span), only ever chunks this
        request was given, so only documents its key may see; `retrieved`: how many it was given."""
        if self.context is None or self.citations_field is None:
            return {}
        from slmkit.retrieval.context import citations

        cited = citations(self.outcome.guard.output, self.context, self.citations_field)
        return {"citations": cited, "retrieved": len(self.context)}


class ChatService:
    """The serving layer behind the HTTP routes: owns the registry reads, the engine and the log."""

    def __init__(
        self, config: ProjectConfig, *, default_release: str | None = None, max_loaded: int | None = None
    ) -> None:
        self.config = config
        self.default_release = default_release or config.serve.release
        self.registry = Registry(config.state_dir)
        backend = open_backend(config.serve, config.state_dir)
        self.monitoring = start_monitoring(config)  # the request log writer and the alert timer
        self.recorder = self.monitoring.recorder
        self.cache = ModelCache(
            config.state_dir, config.root, capacity=max_loaded or config.serve.max_loaded, backend=backend
        )
        self.engine = Engine(
            self.cache,
            record=self.recorder.put,
            max_batch_size=config.serve.max_batch_size,
            max_retries=config.serve.max_retries,
            constrained=config.serve.constrained,
            label_scoring=config.serve.label_scoring,
            context_tokens=None if config.serve.engine == "transformers" else config.serve.context_tokens,
        )
        self._redact: Callable[[str], str] | None = None  # built on first use (it loads the PII recognizers)
        self._specs: dict[ModelKey, ReleaseSpec] = {}
        self.keys = KeyStore(config.state_dir / "keys.db")
        self._retriever: Any = None  # opened on the first request of a task that retrieves
        self.in_flight = 0  # chat requests admitted and not answered; only the event loop changes it
        self.metrics = ServeMetrics(queue_depth=lambda: self.engine.stats()["queued"], in_flight=lambda: self.in_flight)
        self.metrics.registry.register(self.monitoring.collector)

    # --- access --------------------------------------------------------------------------

    def keys_enforced(self) -> bool:
        return self.config.serve.require_keys or self.keys.enforced()

    def authorize(self, header: str | None) -> ApiKey | None:
        """The key of a request's `Authorization: Bearer` header; None while keys are off; else 401."""
        if not self.keys_enforced():
            return None
        scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(
                401,
                "missing API key: send it as 'Authorization: Bearer <key>' (the openai client's api_key); "
                "an operator creates one with `slmkit serve keys add NAME`",
                code="invalid_api_key",
            )
        key = self.keys.authenticate(token.strip())
        if key is None:
            raise APIError(401, "invalid API key: no such key was issued by this server", code="invalid_api_key")
        if key.revoked_at is not None:
            raise APIError(401, f"this API key was revoked at {key.revoked_at}", code="invalid_api_key")
        return key

    # --- releases ------------------------------------------------------------------------

    def resolve(self, model_ref: str, key: ApiKey | None = None) -> Release:
        """A model name from a request -> one release version (aliases are read now, each time).

        With a key: 403 for a model it may not use, and a 404 lists only the models it may.
        """
        if key is not None and not key.allows(model_ref):
            raise APIError(
                403,
                f"the API key '{key.name}' may not use model '{model_ref}'; it may use: {', '.join(key.models)}",
                kind="permission_error",
                code="model_not_allowed",
                param="model",
            )
        try:
            return self.registry.resolve(model_ref, default_alias=self.default_release)
        except RegistryError as exc:
            known = ", ".join(card["id"] for card in self.model_cards(key)) or "none (run `slmkit release` first)"
            raise APIError(
                404,
                f"model '{model_ref}' does not exist ({exc.message}). Available models: {known}",
                code="model_not_found",
                param="model",
            ) from None

    def spec(self, release: Release) -> ReleaseSpec:
        key = (release.name, release.version)
        if key not in self._specs:  # a release never changes, so its spec is built once
            self._specs[key] = release_spec(release)
        return self._specs[key]

    def warm(self, model_ref: str) -> Release:
        """Resolve and load a release before traffic arrives (refuses a changed base model)."""
        release = self.resolve(model_ref)
        spec = self.spec(release)
        self.cache.get(release)
        if spec.task.cfg.retrieval is not None:  # the embedding model loads now, not on the first request
            self._retriever_now().search("warm up", groups=[], k=1)
        return release

    def model_cards(self, key: ApiKey | None = None) -> list[dict[str, Any]]:
        """`name` (its default release), `name@<alias>` and `name@<version>` for every release (the key may use)."""
        releases = self.registry.list_releases()
        cards = []
        for name in dict.fromkeys(r.name for r in releases):
            versions = {r.version: r for r in releases if r.name == name}
            try:
                default = self.registry.resolve(name, default_alias=self.default_release)
                cards.append(model_card(name, _epoch(default.created_at)))
            except RegistryError:
                pass  # no release behind the default alias: only explicit refs work
            for alias, version in self.registry.aliases(name).items():
                cards.append(model_card(f"{name}@{alias}", _epoch(versions[version].created_at)))
            cards.extend(model_card(f"{name}@{v}", _epoch(r.created_at)) for v, r in versions.items())
        return [card for card in cards if key is None or key.allows(card["id"])]

    def health_details_allowed(self, header: str | None, client_host: str | None) -> bool:
        """Who may see /health's details (process ids, loaded releases): a valid key while keys are on;
        while they are off, clients on this machine only. Anyone else gets the bare liveness answer."""
        if self.keys_enforced():
            try:
                self.authorize(header)
            except APIError:
                return False
            return True
        return client_host is not None and is_loopback_host(client_host)

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "default_release": self.default_release,
            "loaded": self.cache.loaded(),
            "engine": self.engine.stats(),
            "backend": self.cache.backend.health(),
        }

    # --- one request ---------------------------------------------------------------------

    async def chat(self, body: bytes, *, request_id: str, received: float, key: ApiKey | None = None) -> Answer:
        """Parse, resolve, queue and await one chat completion; every failure is an APIError.

        An APIError carries the release it had resolved to (`.release`), for the metrics.
        """
        model_ref = ""
        release: Release | None = None
        key_name = key.name if key else None
        try:
            request = parse_chat_request(body)
            model_ref = request.model
            if len(request.messages) > self.config.serve.max_messages:
                raise APIError(
                    400,
                    f"the request has {len(request.messages)} messages; the limit is "
                    f"{self.config.serve.max_messages} (serve.max_messages)",
                    param="messages",
                    code="too_many_messages",
                )
            release = self.resolve(model_ref, key)
            spec = self.spec(release)
            input_text = user_input(spec.task, request.messages)
            history = earlier_turns(request.messages)
            # Counted exactly in tokens by the engine; a conversation this long in characters cannot
            # fit whatever the tokenizer, and is refused before anything renders or tokenizes it.
            characters = len(input_text) + sum(len(turn["content"]) for turn in history)
            if characters > spec.max_prompt_tokens * MAX_CHARS_PER_TOKEN:
                raise APIError(
                    400,
                    f"the conversation is {characters} characters, far past the {spec.max_prompt_tokens} tokens "
                    f"{release.ref} takes (the train.max_seq_len it was trained with); send fewer earlier turns",
                    param="messages",
                    code="prompt_too_long",
                )
            if len(input_text) > spec.max_input_chars:
                raise APIError(
                    400,
                    f"the input is {len(input_text)} characters; {release.ref} was trained on inputs of at most "
                    f"{spec.max_input_chars} (data.max_input_chars)",
                    param="messages",
                    code="input_too_long",
                )
            context = await self._retrieve(spec.task, input_text, key) if spec.task.cfg.retrieval else None
            limit = self.config.serve.max_new_tokens
            job = Job(
                request_id=request_id,
                model_ref=model_ref,
                release=release,
                input_text=input_text,
                history=history,
                max_new_tokens=min(request.max_completion_tokens or request.max_tokens or limit, limit),
                received=received,
                api_key=key_name,
                messages=turns(request.messages) if self.config.monitor.capture.share > 0 else (),
                context=context,
            )
            try:
                future = self.engine.submit(job)
            except EngineBusy as exc:
                raise APIError(429, str(exc), kind="server_error", code="overloaded") from None
        except APIError as exc:
            self.record_error(request_id, model_ref, received, error_kind(exc.status, exc.code), release, key_name)
            exc.release = release.ref if release else None
            raise
        except SlmkitError as exc:  # the release's recorded config cannot be read
            self.record_error(request_id, model_ref, received, "load_failed", release, key_name)
            error = self._unusable(release.ref if release else model_ref, request_id, exc)
            error.release = release.ref if release else None
            raise error from None
        try:
            outcome = await self._wait(future, job)
        except APIError as exc:
            exc.release = release.ref
            raise
        self.metrics.generated(outcome, received)
        if outcome.guard.output is None:
            error = APIError(
                502,
                f"{release.ref} produced no valid answer in {outcome.guard.attempts} attempt(s) "
                f"(first: {outcome.guard.reason}) and its task has no refusal output to fall back to",
                kind="server_error",
                code="no_valid_answer",
            )
            error.release = release.ref
            raise error
        settings = spec.task.cfg.retrieval
        return Answer(request_id, request, outcome, job.context, settings.citations_field if settings else None)

    async def _retrieve(self, task: Task, input_text: str, key: ApiKey | None) -> list[dict[str, Any]]:
        """The chunks for this request, among the documents its key's groups may see (public ones only
        without a key): the filter is applied before anything is ranked."""
        from slmkit.retrieval.context import request_context

        settings = task.cfg.retrieval
        assert settings is not None
        groups = key.groups if key is not None else ()
        context, _ = await asyncio.to_thread(request_context, self._retriever_now(), settings, input_text, groups)
        return context

    def _retriever_now(self) -> Any:
        """The project's index (read live: `slmkit index update` reaches the next request)."""
        if self._retriever is None:
            from slmkit.retrieval import Retriever, open_index

            self._retriever = Retriever(open_index(self.config))
        return self._retriever

    async def _wait(self, future: Any, job: Job) -> Outcome:
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), self.config.serve.timeout_s)
        except TimeoutError:
            job.cancelled = "timeout"  # the engine stops decoding it at its next token
            if future.cancel():  # it never started, so the engine will not log it
                self.record_error(job.request_id, job.model_ref, job.received, "timeout", job.release, job.api_key)
            raise APIError(
                504,
                f"no answer within {self.config.serve.timeout_s:g}s (serve.timeout_s)",
                kind="server_error",
                code="timeout",
            ) from None
        except asyncio.CancelledError:  # the client went away
            job.cancelled = "cancelled"
            if future.cancel():
                self.record_error(job.request_id, job.model_ref, job.received, "cancelled", job.release, job.api_key)
            raise
        except PromptTooLong as exc:
            raise APIError(400, exc.message, param="messages", code="prompt_too_long") from None
        except EngineUnavailable as exc:  # the engine process died or cannot start
            self._log_detail(job.request_id, "the engine is unavailable", exc)
            raise APIError(
                503,
                f"the model engine is unavailable; retry shortly (request {job.request_id}: the server log says why)",
                kind="server_error",
                code="engine_unavailable",
            ) from None
        except SlmkitError as exc:  # loading the release failed; the engine logged the row
            raise self._unusable(job.release.ref, job.request_id, exc) from None
        except Exception:  # the engine logged the traceback and the row
            raise APIError(
                500,
                f"internal error while generating (request {job.request_id}); see the server log",
                kind="server_error",
                code="internal_error",
            ) from None

    def _unusable(self, ref: str, request_id: str, exc: SlmkitError) -> APIError:
        """A release that cannot be served: the client learns which and the request id; the operator's
        server log gets why (paths, hashes, the fix), which is not the client's business."""
        self._log_detail(request_id, f"{ref} cannot be served", exc)
        return APIError(
            500,
            f"{ref} cannot be served now (request {request_id}: the server log says why)",
            kind="server_error",
            code="release_unusable",
        )

    def _log_detail(self, request_id: str, what: str, exc: SlmkitError) -> None:
        """The whole error in the server log, PII-redacted like the request log (an engine's log tail
        may quote a prompt)."""
        if self._redact is None:
            from slmkit.config import PiiConfig
            from slmkit.data.pii import PiiScrubber

            self._redact = PiiScrubber(PiiConfig(enabled=True)).scrub
        log.error("request %s: %s: %s", request_id, what, self._redact(str(exc)))

    def record_error(
        self,
        request_id: str,
        model_ref: str,
        received: float,
        kind: str,
        release: Release | None = None,
        api_key: str | None = None,
    ) -> None:
        self.recorder.put(
            RequestRecord(
                request_id=request_id,
                model_ref=model_ref[:200],
                latency_ms=round((time.perf_counter() - received) * 1000, 2),
                outcome="error",
                release_name=release.name if release else None,
                release_version=release.version if release else None,
                error_kind=kind,
                api_key=api_key,
            )
        )

    def close(self) -> None:
        if self._retriever is not None:
            self._retriever.store.close()
        self.engine.close()
        self.cache.close()  # stops engine processes
        self.monitoring.close()
        self.registry.close()
        self.keys.close()


def user_input(task: Task, messages: list[ChatMessage]) -> str:
    """The model input: the last user message, rendered through the task's template when it is a record.

    A JSON object naming any of the task's input fields is a record ({"subject": ..., "body": ...})
    and renders exactly as the training data did; anything else is the input text itself.
    """
    users = [m for m in messages if m.role == "user"]
    if not users:
        raise APIError(
            400, "the request has no user message; put the input in a message with role 'user'", param="messages"
        )
    text = users[-1].text().strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None
        if isinstance(value, dict) and any(name in value for name in task.cfg.input_fields):
            text = task.render_input(value)
    if not text:
        raise APIError(400, "the last user message is empty", param="messages")
    return text


def turns(messages: list[ChatMessage]) -> tuple[dict[str, str], ...]:
    """Every user and assistant turn as sent (system messages are not used, so not kept): for capture."""
    return tuple({"role": m.role, "content": m.text()} for m in messages if m.role in ("user", "assistant"))


def earlier_turns(messages: list[ChatMessage]) -> tuple[dict[str, str], ...]:
    """The user and assistant turns before the last user message, oldest first, as prompt history.

    System messages are left out (the release's own system prompt is used), and so are tool
    messages and turns without text.
    """
    last = max((i for i, m in enumerate(messages) if m.role == "user"), default=0)
    turns = ({"role": m.role, "content": m.text().strip()} for m in messages[:last] if m.role in ("user", "assistant"))
    return tuple(turn for turn in turns if turn["content"])


def _epoch(iso: str) -> int:
    try:
        return int(datetime.fromisoformat(iso).timestamp())
    except ValueError:
        return 0
