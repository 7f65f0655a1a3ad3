"""Retrieved chunks as a prompt's context for one request (serving, eval); training rows: `training`.

A context is a list of records {"ref": "d1", "id", "document", "title", "section", "heading",
"span", "text"}: `ref` is the short id the prompt shows and the answer cites, the rest is what a
citation resolves to. `Task.model_input` renders it; `Task.decoding_schema` limits the answer's
citations to its refs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slmkit.config import RetrievalSettings
from slmkit.retrieval.chunking import Chunk
from slmkit.retrieval.search import Retriever


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
