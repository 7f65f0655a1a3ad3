"""Retrieved chunks as a prompt's context: for one request (serving, eval) and for training rows (RAFT).

A context is a list of records {"ref": "d1", "id", "document", "title", "section", "heading",
"span", "text"}: `ref` is the short id the prompt shows and the answer cites, the rest is what a
citation resolves to. `Task.model_input` renders it; `Task.decoding_schema` limits the answer's
citations to its refs.

Training rows (as the RAFT paper does): for an answerable row, with probability
`oracle_share` the context holds the chunk with the answer plus distractors (the best-ranked
chunks without it) and the answer cites that chunk; otherwise the context holds distractors
only and the answer becomes the task's refusal. A row whose answer is already the refusal gets
the best-ranked chunks. The chunks come from documents public or in
`retrieval.training_groups` only: a fact trained into the weights can come out for any caller.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from collections.abc import Sequence
from typing import Any

from slmkit.config import RetrievalSettings
from slmkit.retrieval.chunking import Chunk
from slmkit.retrieval.search import Hit, Retriever
from slmkit.task import Task

DEPTH = 20  # chunks ranked per training question to pick the answer's chunk and distractors from


def context_records(chunks: Sequence[Chunk]) -> list[dict[str, Any]]:
    """Chunks, best first, as a prompt's context with refs d1, d2, ..."""
    return [
        {
            "ref": f"d{n}",
            "id": c.id,
            "document": c.doc_id,
            "title": c.title,
            "section": c.section,
            "heading": c.heading,
            "span": [c.start, c.end],
            "text": c.text,
        }
        for n, c in enumerate(chunks, start=1)
    ]


def request_context(
    retriever: Retriever, settings: RetrievalSettings, query: str, groups: Sequence[str]
) -> tuple[list[dict[str, Any]], float | None]:
    """(context, best similarity) for one question asked by a caller with `groups`: the top_k chunks
    at or above min_similarity, among the chunks those groups may see; empty when none reaches it."""
    hits = retriever.search(
        query, groups=groups, k=settings.top_k, mode=settings.fusion, dense_weight=settings.dense_weight
    )
    best = max((h.similarity for h in hits), default=None)
    return context_records([h.chunk for h in hits if h.similarity >= settings.min_similarity]), best


def citations(output: Any, context: Sequence[dict[str, Any]], field: str) -> list[dict[str, Any]]:
    """What an answer's cited refs resolve to: document, title, section and span (never the text)."""
    by_ref = {c["ref"]: c for c in context}
    cited = output.get(field) if isinstance(output, dict) else None
    keys = ("ref", "id", "document", "title", "section", "span")
    return [{k: by_ref[r][k] for k in keys} for r in cited or [] if r in by_ref]


class TrainingContexts:
    """Attaches a RAFT context to each training row of a data build; deterministic per row and seed."""

    def __init__(self, task: Task, retriever: Retriever, seed: int) -> None:
        assert task.cfg.retrieval is not None
        self.task = task
        self.settings: RetrievalSettings = task.cfg.retrieval
        self.retriever = retriever
        self.seed = seed
        self.groups = list(self.settings.training_groups)
        self.counts: Counter[str] = Counter()

    def attach(self, row: dict[str, Any]) -> dict[str, Any]:
        """The row with its `context`, and its output citing it (or the refusal, for a distractor-only row)."""
        settings, task = self.settings, self.task
        hits = self.retriever.search(
            row["input"], groups=self.groups, k=DEPTH, mode=settings.fusion, dense_weight=settings.dense_weight
        )
        output = dict(row["output"])
        rng = random.Random(int(hashlib.sha256(f"{self.seed}:{row['id']}:{row['input']}".encode()).hexdigest(), 16))
        answer = self._answer_text(output)
        if task.is_refusal({**output, settings.citations_field: []}):
            chosen, oracle = [h.chunk for h in hits[: settings.top_k]], None
            self.counts["refusal rows"] += 1
        else:
            oracle = self._oracle(hits, answer)
            holding = {h.chunk.id for h in hits if answer and _holds(h.chunk, answer)}
            holding |= {oracle.id} if oracle is not None else set()
            distractors = [h.chunk for h in hits if h.chunk.id not in holding]
            if oracle is not None and rng.random() < settings.oracle_share:
                chosen = [oracle, *distractors[: settings.top_k - 1]]
                self.counts["rows with the answer's chunk"] += 1
            else:
                chosen, oracle = distractors[: settings.top_k], None
                self.counts["rows with distractors only (answer: the refusal)"] += 1
            rng.shuffle(chosen)
        context = context_records(chosen)
        if oracle is None:
            output = dict(task.refusal_output or {})
        else:
            output[settings.citations_field] = [c["ref"] for c in context if c["id"] == oracle.id]
        return {**row, "output": task.canonical(output), "context": context}

    def _answer_text(self, output: dict[str, Any]) -> str:
        field = self.settings.answer_field
        value = output.get(field) if field else None
        return _norm(value) if isinstance(value, str) else ""

    def _oracle(self, hits: list[Hit], answer: str) -> Chunk | None:
        """The best-ranked chunk holding the answer text (any visible chunk, if none of the top ones does)."""
        if not answer:
            if self.settings.answer_field is None and hits:
                return hits[0].chunk
            self.counts["answerable rows with no answer text"] += 1
            return None
        for hit in hits:
            if _holds(hit.chunk, answer):
                return hit.chunk
        store = self.retriever.store
        where, params = store.visible_filter(self.groups)
        with store.lock:
            ids = [r[0] for r in store.conn.execute(f"SELECT id, text FROM chunks WHERE {where} ORDER BY id", params)
                   if answer in _norm(r[1])]  # fmt: skip
        if ids:
            return store.chunk_rows(ids[:1])[ids[0]]
        self.counts["answerable rows whose answer is in no document (refusal)"] += 1
        return None

    def report(self) -> dict[str, Any]:
        return {"top_k": self.settings.top_k, "oracle_share": self.settings.oracle_share, **self.counts}


def _holds(chunk: Chunk, answer: str) -> bool:
    return answer in _norm(chunk.text)


def _norm(text: str) -> str:
    return " ".join(text.lower().split())


def dumps_row(row: dict[str, Any]) -> bytes:
    return json.dumps(row, ensure_ascii=False).encode()
