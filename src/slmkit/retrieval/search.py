"""Hybrid search over the chunks a caller may see: BM25 and dense cosine, fused.

Both rankings are computed over the caller's rows only, before anything is ranked:

- BM25 reads the index's term lists (FTS5's fts5vocab) joined with the access filter in one SQL
  statement, and its statistics (how many chunks, their average length, how many hold each
  term) are counted over the caller's chunks too. FTS5's own bm25() counts them over the whole
  table, so a caller's scores, and which chunks pass the threshold, would move with documents
  it cannot see; computed here they cannot.
- Dense: all-MiniLM-L6-v2 vectors, exact cosine in numpy over the rows the access mask lets
  through. The matrix is cached per index generation, so an update is seen by the next query.

Fusion: reciprocal rank fusion (`rrf`, k=60) or a weighted blend of min-max normalised scores.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from slmkit.retrieval.chunking import Chunk
from slmkit.retrieval.store import IndexStore
from slmkit.retrieval.tokens import query_terms

Mode = Literal["bm25", "dense", "rrf", "weighted"]
RRF_K = 60
BM25_K1, BM25_B = 1.2, 0.75


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float  # the fused score (or the single ranking's) that ordered the hits
    similarity: float  # cosine of query and chunk: comparable across queries, so thresholds use it
    bm25: float  # 0.0 when no query term is in the chunk


class Retriever:
    """Searches one index; thread-safe. `embedder` is anything with `embed(texts) -> unit vectors`."""

    def __init__(self, store: IndexStore, embedder: Any = None) -> None:
        self.store = store
        self._embedder = embedder
        self._cache: _Vectors | None = None
        self._lock = threading.Lock()

    @property
    def embedder(self) -> Any:
        if self._embedder is None:
            from slmkit.data.semantic import Embedder

            self._embedder = Embedder(batch_size=32)
        return self._embedder

    def search(
        self,
        query: str,
        *,
        groups: Sequence[str],
        k: int = 10,
        mode: Mode = "rrf",
        dense_weight: float = 0.5,
        depth: int = 50,
        query_vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """The best `k` chunks for `query` among those the caller's `groups` may see.

        `query_vector` is the query's embedding when the caller has it already (`embed_queries`
        embeds many questions in one batch); otherwise the query is embedded here.
        """
        depth = max(depth, k)
        vectors = self._vectors()
        if not len(vectors.ids):  # an empty index: nothing to rank
            return []
        visible = vectors.visible(groups)
        if query_vector is None:
            query_vector = self.embedder.embed([query])[0]
        similarity = np.full(len(vectors.ids), -1.0, dtype=np.float32)
        similarity[visible] = vectors.matrix[visible] @ query_vector
        bm25 = self.bm25(query, groups) if mode != "dense" else {}
        row_of = vectors.row_of
        dense_order = [int(vectors.ids[i]) for i in _top(similarity, visible, depth)] if mode != "bm25" else []
        lexical_order = sorted(bm25, key=lambda i: (-bm25[i], i))[:depth]
        if mode == "bm25":
            fused = {i: bm25[i] for i in lexical_order}
        elif mode == "dense":
            fused = {i: float(similarity[row_of[i]]) for i in dense_order}
        elif mode == "rrf":
            fused = {}
            for order in (lexical_order, dense_order):
                for rank, i in enumerate(order, start=1):
                    fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank)
        else:
            pool = list(dict.fromkeys([*lexical_order, *dense_order]))
            lex = _minmax([bm25.get(i, 0.0) for i in pool])
            den = _minmax([float(similarity[row_of[i]]) for i in pool])
            fused = {i: dense_weight * d + (1 - dense_weight) * b for i, b, d in zip(pool, lex, den, strict=True)}
        best = sorted(fused, key=lambda i: (-fused[i], i))[:k]
        chunks = self.store.chunk_rows(best)
        return [Hit(chunks[i], fused[i], float(similarity[row_of[i]]), bm25.get(i, 0.0)) for i in best if i in chunks]

    def embed_queries(self, queries: Sequence[str]) -> np.ndarray:
        """(len(queries), dim) unit vectors for `search(query_vector=...)`: one batched pass through the model."""
        return np.asarray(self.embedder.embed(list(queries)), dtype=np.float32)

    def bm25(self, query: str, groups: Sequence[str]) -> dict[int, float]:
        """BM25 of every chunk the caller may see that holds a query term, with the caller's statistics."""
        where, params = self.store.visible_filter(groups)
        conn = self.store.conn
        with self.store.lock:
            count, total = conn.execute(f"SELECT count(*), total(tokens) FROM chunks WHERE {where}", params).fetchone()
            if not count:
                return {}
            average = total / count
            scores: dict[int, float] = {}
            for term in query_terms(query):
                rows = conn.execute(
                    "SELECT v.doc, count(*), c.tokens FROM chunks_terms v JOIN chunks c ON c.id = v.doc "
                    f"WHERE v.term = ? AND c.{where} GROUP BY v.doc",
                    [term, *params],
                ).fetchall()
                idf = math.log(1.0 + (count - len(rows) + 0.5) / (len(rows) + 0.5))
                for row_id, tf, length in rows:
                    norm = tf + BM25_K1 * (1 - BM25_B + BM25_B * length / average)
                    scores[row_id] = scores.get(row_id, 0.0) + idf * tf * (BM25_K1 + 1) / norm
        return scores

    def visible_count(self, groups: Sequence[str]) -> int:
        return int(self._vectors().visible(groups).sum())

    def _vectors(self) -> _Vectors:
        generation = self.store.generation()
        with self._lock:
            if self._cache is None or self._cache.generation != generation:
                self._cache = _Vectors.load(self.store, generation)
            return self._cache


@dataclass
class _Vectors:
    """Every chunk's vector in one matrix, with the access groups of its document."""

    generation: int
    ids: np.ndarray  # row ids, int64
    matrix: np.ndarray  # (n, dim) float32
    group_sets: list[frozenset[str]]  # distinct group sets; frozenset() is public
    set_of_row: np.ndarray  # index into group_sets, per row
    row_of: dict[int, int]

    @classmethod
    def load(cls, store: IndexStore, generation: int) -> _Vectors:
        with store.lock:
            docs = dict(store.conn.execute("SELECT doc_id, groups FROM documents").fetchall())
            rows = store.conn.execute("SELECT id, doc_id, embedding FROM chunks ORDER BY id").fetchall()
        sets: dict[frozenset[str], int] = {}
        set_of_row = np.empty(len(rows), dtype=np.int32)
        for n, (_, doc_id, _) in enumerate(rows):
            key = frozenset(json.loads(docs[doc_id]))
            set_of_row[n] = sets.setdefault(key, len(sets))
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        matrix = (
            np.frombuffer(b"".join(r[2] for r in rows), dtype=np.float32).reshape(len(rows), -1)
            if rows
            else np.zeros((0, 0), dtype=np.float32)
        )
        return cls(generation, ids, matrix, list(sets), set_of_row, {int(i): n for n, i in enumerate(ids)})

    def visible(self, groups: Sequence[str]) -> np.ndarray:
        """A boolean mask of the rows a caller with `groups` may see: public, or sharing a group."""
        caller = set(groups)
        allowed = [n for n, s in enumerate(self.group_sets) if not s or s & caller]
        return np.isin(self.set_of_row, np.asarray(allowed, dtype=np.int32))


def _top(scores: np.ndarray, mask: np.ndarray, n: int) -> list[int]:
    """Positions of the n best scores among the masked rows, best first (ties: lower position)."""
    candidates = np.flatnonzero(mask)
    if len(candidates) > n:
        part = np.argpartition(-scores[candidates], n - 1)[:n]
        candidates = candidates[part]
    return sorted(candidates.tolist(), key=lambda i: (-scores[i], i))


def _minmax(values: list[float]) -> list[float]:
    if not values:
        return []
    low, high = min(values), max(values)
    return [(v - low) / (high - low) if high > low else 1.0 for v in values]
