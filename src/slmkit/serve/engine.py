"""The batching engine: one worker thread answers requests in batches, through each release's Generator.

The Generator decodes (transformers in this process, or a vLLM or llama.cpp process: see
generator.py); everything else is here and the same for every engine.

Requests that arrive within a few milliseconds of each other are generated together, grouped
by release version (and length limit), so a release or rollback mid-traffic never mixes two
versions in one answer. The guard runs here too: an invalid answer is regenerated, batched with
the other invalid answers of the same round, before anything goes back to the client.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

from slmkit.errors import ServeError, SlmkitError
from slmkit.eval.answer import refuse_low_confidence
from slmkit.models.labels import LabelField
from slmkit.monitor import RequestRecord
from slmkit.monitor.requests import now
from slmkit.monitor.signals import Finished, answer_signals
from slmkit.registry import Release
from slmkit.serve.guard import GuardResult, acceptable, judge
from slmkit.serve.processes import EngineUnavailable
from slmkit.serve.releases import LoadedRelease, ModelCache
from slmkit.task import Task

log = logging.getLogger("slmkit.serve")

MAX_BATCH_WAIT_S = 0.2  # the longest a request waits for others to join its batch
RETRY_TEMPERATURE = 0.7  # enough to leave the greedy answer's rut, little enough to stay on task


class EngineBusy(ServeError):
    """The queue is full: the client should retry shortly (HTTP 429)."""


class PromptTooLong(ServeError):
    """The rendered prompt (system prompt, conversation, input) is past the release's limit (HTTP 400)."""


@dataclass(frozen=True)
class Outcome:
    """What the engine made of one request; `guard.output` is None when nothing valid exists."""

    release: Release
    guard: GuardResult
    escalation: str | None
    prompt_tokens: int  # summed over attempts
    completion_tokens: int  # summed over attempts
    finish_reason: str
    # Measured in the generation loop (time.perf_counter): when the first attempt's first token
    # was produced, and the gaps between consecutive tokens of every attempt. For metrics.
    first_token_at: float | None = None
    inter_token_s: tuple[float, ...] = ()
    constrained: bool = False  # decoded under the task's JSON schema
    label_probability: float | None = None  # label scoring: the label's probability among the allowed ones
    token_logprobs: tuple[float, ...] = ()  # of the attempt returned (none when the guard answered), for confidence
    task: Task | None = None  # the release's task spec, for the monitor's signals


@dataclass
class Job:
    request_id: str
    model_ref: str  # what the client asked for, for the request log
    release: Release  # resolved once, when the request arrived
    input_text: str
    max_new_tokens: int
    history: tuple[dict[str, str], ...] = ()  # the conversation before the input, oldest first
    received: float = field(default_factory=time.perf_counter)
    ts: str = field(default_factory=now)  # arrival time, for the request log
    api_key: str | None = None  # the name of the key that sent it, for the request log
    messages: tuple[dict[str, str], ...] = ()  # the request's turns as sent, for monitor.capture only
    # A retrieval task: the chunks retrieved for this request, as slmkit.retrieval.context records
    # (None: the task does not retrieve; empty: nothing relevant, so the refusal answers).
    context: list[dict[str, Any]] | None = None
    future: Future[Outcome] = field(default_factory=Future)
    # Set (to "timeout" or "cancelled") by the event loop once nobody waits for the answer: the
    # engine then stops decoding it at the next token and logs the request with that error.
    cancelled: str | None = None


class Engine:
    """Batched generation + guard on a background thread; `submit` is safe from any thread."""

    def __init__(
        self,
        cache: ModelCache,
        *,
        record: Callable[[RequestRecord | Finished], None],
        max_batch_size: int = 8,
        max_retries: int = 1,
        max_queue: int = 256,
        batch_wait_s: float = 0.005,
        constrained: bool = True,
        label_scoring: bool = True,
        context_tokens: int | None = None,
    ) -> None:
        self.cache = cache
        self._context_tokens = context_tokens  # an engine process's window (prompt + answer), if it has one
        self._constrained = constrained  # pass the task's schema to engines that constrain decoding
        self._label_scoring = label_scoring  # engines that can (transformers) score the label field
        self._record = record
        self._max_batch = max_batch_size
        self._max_retries = max_retries
        self._wait = batch_wait_s
        self._last_batch_s = 0.0  # how long the previous batch took: sets how long the next waits for company
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self._stats = {"batches": 0, "requests": 0, "largest_batch": 0}
        self._thread = threading.Thread(target=self._run, name="slmkit-engine", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> Future[Outcome]:
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise EngineBusy(
                f"the server is at capacity ({self._jobs.maxsize} requests queued)", hint="retry in a moment"
            ) from None
        return job.future

    def stats(self) -> dict[str, int]:
        return {**self._stats, "queued": self._jobs.qsize()}

    def close(self) -> None:
        """Answer what is already queued, then stop; a request submitted after this fails."""
        self._jobs.put(None)
        self._thread.join(timeout=60)
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None and job.future.set_running_or_notify_cancel():
                job.future.set_exception(ServeError("the server is shutting down"))

    # --- the worker thread ---------------------------------------------------------------

    def _run(self) -> None:
        while True:
            first = self._jobs.get()
            if first is None:
                return
            batch, stop = self._collect(first)
            began = time.perf_counter()
            try:
                self._run_batch(batch)
            except Exception:  # never let one batch kill the worker
                log.exception("engine batch failed")
            self._last_batch_s = time.perf_counter() - began
            if stop:
                return

    def _collect(self, first: Job) -> tuple[list[Job], bool]:
        """Wait a little for company, up to max_batch_size requests.

        The wait is `batch_wait_s`, or 2% of the previous batch's time when that is longer (at
        most MAX_BATCH_WAIT_S): clients answered together come back a few milliseconds apart
        over HTTP, and a batch that leaves half of them behind makes them wait a whole batch
        more. 2% of a batch is a latency cost nobody sees; on a fast model the wait stays short.
        """
        batch = [first]
        wait = min(max(self._wait, 0.02 * self._last_batch_s), MAX_BATCH_WAIT_S)
        deadline = time.perf_counter() + wait
        while len(batch) < self._max_batch:
            remaining = deadline - time.perf_counter()
            try:
                job = self._jobs.get(timeout=remaining) if remaining > 0 else self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                return batch, True
            batch.append(job)
        return batch, False

    def _run_batch(self, batch: list[Job]) -> None:
        # A request the client gave up on before its batch started is dropped here.
        live = [job for job in batch if job.future.set_running_or_notify_cancel()]
        self._stats["batches"] += 1
        self._stats["requests"] += len(live)
        self._stats["largest_batch"] = max(self._stats["largest_batch"], len(live))
        groups: dict[tuple[str, int, int], list[Job]] = {}
        for job in live:
            groups.setdefault((job.release.name, job.release.version, job.max_new_tokens), []).append(job)
        records: list[RequestRecord | Finished] = []
        for jobs in groups.values():
            for job, result in self._answer_group(jobs):
                if isinstance(result, Outcome):
                    job.future.set_result(result)
                    finished = _finished(job, result)
                    if job.cancelled:  # answered 504, or its client left: logged so, with the tokens it cost
                        cancelled = replace(finished.record, outcome="error", error_kind=job.cancelled)
                        finished = replace(finished, record=cancelled)
                    records.append(finished)
                else:
                    job.future.set_exception(result)
                    kind = (
                        "bad_request"
                        if isinstance(result, PromptTooLong)
                        else "load_failed"
                        if isinstance(result, SlmkitError)
                        else "internal"
                    )
                    records.append(_record(job, None, error_kind=kind))
        # Written after the answers are out: the log is never on a request's critical path.
        for record in records:
            self._record(record)

    def _answer_group(self, jobs: list[Job]) -> list[tuple[Job, Outcome | Exception]]:
        """Answers for one release version; a failing request fails alone, not its whole batch."""
        try:
            loaded = self.cache.get(jobs[0].release)
        except Exception as exc:  # the release cannot be loaded: nothing in this group can run
            if not isinstance(exc, SlmkitError):
                log.exception("loading %s failed", jobs[0].release.ref)
            return [(job, exc) for job in jobs]
        too_long: list[tuple[Job, Outcome | Exception]] = []
        fitting = []
        for job in jobs:
            error = self._too_long(loaded, job)
            if error is None:
                fitting.append(job)
            else:
                too_long.append((job, error))
        return too_long + self._answer_loaded(loaded, fitting)

    def _answer_loaded(self, loaded: LoadedRelease, jobs: list[Job]) -> list[tuple[Job, Outcome | Exception]]:
        if not jobs:
            return []
        try:
            return list(zip(jobs, self._answer(loaded, jobs), strict=True))
        except EngineUnavailable as exc:  # the engine process is down: no request of the batch is to blame
            return [(job, exc) for job in jobs]
        except Exception as exc:
            if len(jobs) == 1:
                # The traceback, never the request: its text may carry personal data.
                log.exception("generation failed for a request to %s", jobs[0].release.ref)
                return [(jobs[0], exc)]
        results: list[tuple[Job, Outcome | Exception]] = []
        for job in jobs:  # find the request that broke the batch by answering each alone
            results.extend(self._answer_loaded(loaded, [job]))
        return results

    def _too_long(self, loaded: LoadedRelease, job: Job) -> PromptTooLong | None:
        """The whole prompt, in tokens, against the release's limit (and the engine's window)."""
        limit = loaded.spec.max_prompt_tokens
        if self._context_tokens is not None:
            limit = min(limit, self._context_tokens - job.max_new_tokens)
        prompt = _prompt(loaded.task, loaded.tokenizer, job)
        tokens = len(loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"])
        if tokens <= limit:
            return None
        return PromptTooLong(
            f"the prompt is {tokens} tokens (system prompt, earlier turns, input and any retrieved documents); "
            f"{job.release.ref} takes at "
            f"most {limit} (the train.max_seq_len it was trained with"
            + (f", less max_tokens within serve.context_tokens={self._context_tokens}" if self._context_tokens else "")
            + ")",
            hint="send fewer or shorter earlier turns",
        )

    def _answer(self, loaded: LoadedRelease, jobs: list[Job]) -> list[Outcome]:
        """Greedy first (as evaluated); each retry round samples, batched over the still-invalid."""
        task, tokenizer = loaded.task, loaded.tokenizer
        if task.cfg.retrieval is not None and any(job.context == [] for job in jobs):
            # Nothing relevant was retrieved: the refusal is the answer, and the model is not asked.
            asked = [job for job in jobs if job.context != []]
            answered = dict(zip(map(id, asked), self._answer(loaded, asked) if asked else [], strict=True))
            return [answered.get(id(job)) or _refusal(job, task) for job in jobs]
        # A retrieval task decodes each request under its own schema: citations only of its own chunks.
        schema: Any = None
        if self._constrained:
            schema = [task.decoding_schema(job.context) for job in jobs] if task.cfg.retrieval else task.schema
        prompts = [_prompt(task, tokenizer, job) for job in jobs]
        texts: list[list[str]] = [[] for _ in jobs]
        finished: list[list[bool]] = [[] for _ in jobs]
        prompt_tokens = [0] * len(jobs)
        completion_tokens = [0] * len(jobs)
        token_times: list[list[tuple[float, ...]]] = [[] for _ in jobs]
        logprobs: list[list[tuple[float, ...]]] = [[] for _ in jobs]
        pending = list(range(len(jobs)))
        scorer = getattr(loaded.generator, "answer_labels", None)
        scored = self._label_scoring and scorer is not None and LabelField.of(task) is not None
        label_probability: list[float | None] = [None] * len(jobs)
        for attempt in range(1 + self._max_retries):
            if not pending:
                break

            def abandoned(k: int, asked: tuple[int, ...] = tuple(pending)) -> bool:
                return jobs[asked[k]].cancelled is not None

            schemas = [schema[i] for i in pending] if isinstance(schema, list) else schema
            if attempt == 0 and scored and scorer is not None:  # as eval answered: scored, refused under its threshold
                generations = scorer(
                    task,
                    [prompts[i] for i in pending],
                    max_new_tokens=jobs[0].max_new_tokens,
                    schema=schemas,
                    stop=abandoned,
                )
                refuse_low_confidence(task, generations, loaded.refusal_threshold)
                for i, generation in zip(pending, generations, strict=True):
                    label_probability[i] = generation.label.probability
            else:
                generations = loaded.generator.generate(
                    [prompts[i] for i in pending],
                    max_new_tokens=jobs[0].max_new_tokens,
                    temperature=0.0 if attempt == 0 else RETRY_TEMPERATURE,
                    seed=attempt,  # retries are reproducible for the same batch
                    schema=schemas,
                    stop=abandoned,
                )
            for i, generation in zip(pending, generations, strict=True):
                texts[i].append(generation.text)
                finished[i].append(generation.finished)
                prompt_tokens[i] += generation.prompt_tokens
                completion_tokens[i] += generation.completion_tokens
                token_times[i].append(generation.token_times)
                logprobs[i].append(generation.token_logprobs)
            pending = [
                i
                for i in pending
                if not acceptable(task, texts[i][-1], _cited_within(task, jobs[i])) and jobs[i].cancelled is None
            ]

        outcomes = []
        for i, job in enumerate(jobs):
            guard = judge(task, texts[i], _cited_within(task, job))
            # "length" only when the answer returned is one the model cut off mid-way.
            cut = guard.chosen is not None and not finished[i][guard.chosen]
            escalation = task.escalation_reason(job.input_text, guard.output) if guard.output is not None else None
            first = token_times[i][0]
            gaps = tuple(b - a for times in token_times[i] for a, b in pairwise(times))
            outcomes.append(
                Outcome(
                    job.release,
                    guard,
                    escalation,
                    prompt_tokens[i],
                    completion_tokens[i],
                    "length" if cut else "stop",
                    first_token_at=first[0] if first else None,
                    inter_token_s=gaps,
                    constrained=schema is not None and not getattr(loaded.generator, "unconstrained", None),
                    label_probability=label_probability[i],
                    token_logprobs=logprobs[i][guard.chosen] if guard.chosen is not None else (),
                    task=task,
                )
            )
        return outcomes


def _finished(job: Job, outcome: Outcome) -> Finished:
    """The request's log row with its task signals, and the texts the monitor's writer needs (never logged)."""
    task = outcome.task
    signals = answer_signals(
        fields=task.fields if task is not None else (),
        label_field=task.cfg.label_field if task is not None else None,
        output=outcome.guard.output,
        token_logprobs=outcome.token_logprobs,
        label_probability=outcome.label_probability if outcome.guard.chosen is not None else None,
        received=job.received,
        first_token_at=outcome.first_token_at,
        inter_token_s=outcome.inter_token_s,
    )
    return Finished(
        replace(_record(job, outcome), **signals),
        input_text=job.input_text,
        messages=job.messages,
        answer=outcome.guard.content,
    )


def _cited_within(task: Task, job: Job) -> Callable[[Any], str | None] | None:
    """For a retrieval task: the guard's extra check that an answer cites only this request's chunks
    (constrained decoding already makes anything else impossible; an engine that cannot enforce the
    schema still never returns an invented citation)."""
    if task.cfg.retrieval is None:
        return None
    return lambda output: task.citation_problem(output, job.context)


def _refusal(job: Job, task: Task) -> Outcome:
    """The answer when retrieval found nothing relevant: the task's refusal, without a model call."""
    output = task.refusal_output
    guard = GuardResult(
        output=output,
        content=task.format_output(output) if output is not None else None,
        chosen=None,
        valid_first=True,
        replaced=False,
        refused=output is not None,
        attempts=0,
        reason="nothing relevant was retrieved",
    )
    return Outcome(job.release, guard, None, 0, 0, "stop", task=task)


def _prompt(task: Task, tokenizer: Any, job: Job) -> str:
    """The prompt the model sees for a request: system prompt, earlier turns, retrieved chunks, input."""
    return task.prompt_text(tokenizer, task.model_input(job.input_text, job.context), job.history)


def _record(job: Job, outcome: Outcome | None, *, error_kind: str | None = None) -> RequestRecord:
    failed = RequestRecord(
        request_id=job.request_id,
        model_ref=job.model_ref[:200],
        latency_ms=round((time.perf_counter() - job.received) * 1000, 2),
        outcome="error",
        release_name=job.release.name,
        release_version=job.release.version,
        error_kind=error_kind,
        api_key=job.api_key,
        ts=job.ts,
    )
    if outcome is None:
        return failed
    guard = outcome.guard
    return replace(
        failed,
        outcome="error" if guard.output is None else "refused" if guard.refused else "ok",
        error_kind="no_valid_answer" if guard.output is None else None,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        valid=guard.valid_first,
        refused=guard.refused,
        replaced=guard.replaced,
        attempts=guard.attempts,
        escalate=outcome.escalation is not None,
    )
