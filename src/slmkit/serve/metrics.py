"""Prometheus metrics of the gateway, served as text at /metrics, labelled by the release that answered.

Rates are pairs of counters to divide in PromQL, e.g. the schema-valid-first-try rate:
`rate(slmkit_schema_valid_first_try_total[5m]) / rate(slmkit_answers_total[5m])`.
Time to first token and inter-token latency come from the generation loop's own timestamps.
Requests that never reached a release (401, 413, an unknown model) carry release="none".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slmkit.serve.engine import Outcome

NO_RELEASE = "none"
# Small models on CPUs answer in milliseconds per token; large ones on busy GPUs take seconds.
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5)
FIRST_TOKEN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0)
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_KINDS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "unknown_model",
    408: "body_timeout",
    413: "too_large",
    429: "overloaded",
    499: "cancelled",
    502: "no_valid_answer",
    504: "timeout",
}


def error_kind(status: int, code: str | None = None) -> str:
    """The outcome name of a failed request, shared by the request log and the metrics."""
    if status == 500:
        return "load_failed" if code == "release_unusable" else "internal"
    return _KINDS.get(status, "error")


class ServeMetrics:
    """One registry per server (tests run several in one process); thread-safe like prometheus_client."""

    def __init__(self, *, queue_depth: Callable[[], int], in_flight: Callable[[], int]) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

        disable_created_metrics()  # process-wide, as vLLM does: a `_created` twin of every series is noise
        self.registry = registry = CollectorRegistry()
        by_release = ["release"]
        self.requests = Counter(
            "slmkit_requests",
            "Chat completion requests by how they ended: ok, refused, or an error kind, with the HTTP status.",
            ["release", "outcome", "status"],
            registry=registry,
        )
        self.answers = Counter(
            "slmkit_answers", "Answers returned (ok or refused): the denominator of the rates.", by_release,
            registry=registry,
        )  # fmt: skip
        self.valid_first = Counter(
            "slmkit_schema_valid_first_try", "Answers whose first generation fit the schema as written.", by_release,
            registry=registry,
        )  # fmt: skip
        self.refusals = Counter(
            "slmkit_refusals", "Answers that are the task's refusal output.", by_release, registry=registry
        )
        self.retries = Counter(
            "slmkit_guard_retries", "Regenerations after an answer failed the schema.", by_release, registry=registry
        )
        self.replacements = Counter(
            "slmkit_guard_replacements", "Answers the guard replaced by the refusal output.", by_release,
            registry=registry,
        )  # fmt: skip
        self.prompt_tokens = Counter(
            "slmkit_prompt_tokens", "Prompt tokens prefilled, over every attempt.", by_release, registry=registry
        )
        self.completion_tokens = Counter(
            "slmkit_completion_tokens", "Tokens generated, over every attempt.", by_release, registry=registry
        )
        self.first_token = Histogram(
            "slmkit_time_to_first_token_seconds", "From the request's arrival to its first generated token.",
            by_release, buckets=FIRST_TOKEN_BUCKETS, registry=registry,
        )  # fmt: skip
        self.inter_token = Histogram(
            "slmkit_inter_token_latency_seconds", "Between consecutive generated tokens of one request.",
            by_release, buckets=TOKEN_BUCKETS, registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            "slmkit_request_latency_seconds", "From arrival to the validated answer, for answered requests.",
            by_release, buckets=REQUEST_BUCKETS, registry=registry,
        )  # fmt: skip
        Gauge("slmkit_queue_depth", "Requests waiting for the engine (all releases).", registry=registry).set_function(
            queue_depth
        )
        Gauge(
            "slmkit_requests_in_flight", "Chat requests admitted and not yet answered.", registry=registry
        ).set_function(in_flight)

    def generated(self, outcome: Outcome, received: float) -> None:
        """What the engine did for one request: tokens, guard work and token timings."""
        release = outcome.release.ref
        guard = outcome.guard
        self.prompt_tokens.labels(release).inc(outcome.prompt_tokens)
        self.completion_tokens.labels(release).inc(outcome.completion_tokens)
        self.retries.labels(release).inc(max(guard.attempts - 1, 0))
        self.replacements.labels(release).inc(int(guard.replaced))
        if outcome.first_token_at is not None:
            self.first_token.labels(release).observe(max(outcome.first_token_at - received, 0.0))
        inter_token = self.inter_token.labels(release)
        for gap in outcome.inter_token_s:
            inter_token.observe(gap)

    def answered(self, outcome: Outcome, received: float) -> None:
        """A request that got its validated answer (HTTP 200)."""
        release = outcome.release.ref
        guard = outcome.guard
        self.requests.labels(release, "refused" if guard.refused else "ok", "200").inc()
        self.answers.labels(release).inc()
        # inc(0) too: each rate's numerator exists, at 0, as soon as its release has answered
        self.valid_first.labels(release).inc(int(guard.valid_first))
        self.refusals.labels(release).inc(int(guard.refused))
        self.latency.labels(release).observe(time.perf_counter() - received)

    def failed(self, release: str | None, status: int, code: str | None = None) -> None:
        self.requests.labels(release or NO_RELEASE, error_kind(status, code), str(status)).inc()

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)
