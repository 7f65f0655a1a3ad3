"""Task signals of each answered request, taken where the request finishes, and written off its path.

The server hands every finished request to `SignalSink.write` from its log-writer thread (never
the thread that answers). The numbers (label, null fields, confidence, token timings) were
taken by the engine with `answer_signals`; the sink adds what needs the input text, which it
holds only until the row is written: the input's embedding (of its PII-redacted form) and how
unlike the training inputs it is, and, for the sampled share `monitor.capture` asks for, a
redacted copy of the request and its answer.

If the writer falls behind (a burst bigger than `EMBED_BACKLOG` rows waiting), the backlog is
written without embeddings rather than let memory and lag grow: input drift then works on the
rows that have one, and the count of skipped rows is kept (`skipped_embeddings`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from slmkit.config import ProjectConfig
from slmkit.eval.confidence import confidence_fields
from slmkit.monitor.capture import Redactor, capture_row, purge_expired, sampled
from slmkit.monitor.requests import CaptureRow, RequestLog, RequestRecord
from slmkit.registry import Registry

log = logging.getLogger("slmkit.monitor")

EMBED_BACKLOG = 512  # rows waiting past which a drain is written without embeddings
PURGE_EVERY_S = 3600.0


@dataclass(frozen=True)
class Finished:
    """A request that got an answer: its log row, and the texts the sink needs and never writes as such."""

    record: RequestRecord
    input_text: str = ""  # the rendered input the model saw: embedded after redaction
    messages: tuple[dict[str, str], ...] = ()  # the request's user and assistant turns, for capture
    answer: str | None = None  # the content returned, for capture


def answer_signals(
    *,
    fields: Sequence[str],
    label_field: str | None,
    output: dict[str, Any] | None,
    token_logprobs: Sequence[float],
    label_probability: float | None = None,
    received: float,
    first_token_at: float | None,
    inter_token_s: Sequence[float],
) -> dict[str, Any]:
    """The RequestRecord fields of one answer: label, null fields, confidence, TTFT and mean inter-token gap.

    `token_logprobs` are those of the attempt returned (empty when the guard answered for the
    model: then there is no confidence). Confidence is eval's (slmkit.eval.confidence): the label's
    probability when label scoring chose it, else the least likely token's probability.
    """
    label = None
    nulls = None
    if isinstance(output, dict):
        nulls = sum(1 for name in fields if output.get(name) is None)
        value = output.get(label_field) if label_field else None
        label = None if value is None else str(value)
    confidence = label_probability
    if confidence is None:
        confidence = confidence_fields(token_logprobs)["confidence"]
    return {
        "label": label,
        "null_fields": nulls,
        "confidence": confidence,
        "ttft_ms": None if first_token_at is None else round(max(first_token_at - received, 0.0) * 1000, 2),
        "itl_ms": round(sum(inter_token_s) / len(inter_token_s) * 1000, 3) if inter_token_s else None,
    }


class SignalSink:
    """Embeds, flags, samples for capture and writes; used by one writer thread."""

    def __init__(
        self, config: ProjectConfig, request_log: RequestLog, *, embed: Callable[[Sequence[str]], Any] | None = None
    ) -> None:
        self.config = config
        self.request_log = request_log
        self.monitor = config.monitor
        self._redactor: Redactor | None = None
        self._embed = embed
        self._registry: Registry | None = None
        self._references: dict[tuple[str, int], Any] = {}  # (release, version) -> Reference | None
        self._last_purge = 0.0
        self.skipped_embeddings = 0

    @property
    def redactor(self) -> Redactor:
        if self._redactor is None:
            self._redactor = Redactor(self.config.data.pii)
        return self._redactor

    def write(self, items: Sequence[RequestRecord | Finished], *, backlog: int = 0) -> int:
        """Write one drain of the queue in one transaction; returns how many rows."""
        finished = [i for i in items if isinstance(i, Finished)]
        records = {id(f): f.record for f in finished}
        if finished and self.monitor.embeddings:
            if backlog > EMBED_BACKLOG:
                self.skipped_embeddings += len(finished)
            else:
                records.update(self._embedded(finished))
        captures: list[CaptureRow] = []
        share = self.monitor.capture.share
        for f in finished:
            if share > 0 and f.record.outcome != "error" and sampled(f.record.request_id, share):
                captures.append(capture_row(records[id(f)], f.messages, f.answer, self.redactor))
        rows = [records[id(i)] if isinstance(i, Finished) else i for i in items]
        written = self.request_log.append(rows, captures)
        self._purge_now_and_then()
        return written

    def close(self) -> None:
        if self._registry is not None:
            self._registry.close()

    # --- embeddings ----------------------------------------------------------------------

    def _embedded(self, finished: Sequence[Finished]) -> dict[int, RequestRecord]:
        from slmkit.monitor.embedding import InputEmbedder, dequantize, quantize

        todo = [f for f in finished if f.input_text and f.record.outcome != "error"]
        if not todo:
            return {}
        if self._embed is None:
            self._embed = InputEmbedder()
        texts = [self.redactor.text(f.input_text) for f in todo]
        try:
            blobs = quantize(self._embed(texts))
        except Exception as exc:  # the embedding model is missing or broken: log rows without embeddings
            log.warning("input embeddings are off for now: %s", exc)
            self.skipped_embeddings += len(todo)
            return {}
        out: dict[int, RequestRecord] = {}
        for f, blob in zip(todo, blobs, strict=True):
            record = replace(f.record, embedding=blob)
            reference = self._reference(record)
            if reference is not None:
                novelty = float(reference.novelty(dequantize([blob]))[0])
                record = replace(record, novelty=round(novelty, 5), flagged=novelty > reference.novelty_threshold)
            out[id(f)] = record
        return out

    def _reference(self, record: RequestRecord) -> Any:
        """The input-drift reference of the release that answered (built once per dataset version)."""
        from slmkit.monitor.embedding import reference_for

        if record.release_name is None or record.release_version is None:
            return None
        key = (record.release_name, record.release_version)
        if key not in self._references:
            self._references[key] = None
            try:
                if self._registry is None:
                    self._registry = Registry(self.config.state_dir)
                release = self._registry.get_release(*key)
                self._references[key] = reference_for(
                    self._registry, release.dataset_version, self._embed, size=self.monitor.drift.reference_size
                )
            except Exception as exc:  # a release without a dataset here: no novelty for it, said once
                log.warning("no input drift reference for %s@%s: %s", key[0], key[1], exc)
        return self._references[key]

    def _purge_now_and_then(self) -> None:
        if time.monotonic() - self._last_purge < PURGE_EVERY_S:
            return
        self._last_purge = time.monotonic()
        try:
            purge_expired(
                self.request_log,
                self.monitor.capture.retention_days,
                embedding_retention_days=self.monitor.embedding_retention_days,
            )
        except Exception as exc:
            log.warning("could not delete expired captures: %s", exc)
