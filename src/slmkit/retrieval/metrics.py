"""`slmkit index eval`: recall@k, MRR and nDCG@10 on a labelled query set, per ranking.

The query set (qrels) is JSONL, one query per line:

    {"query": "how long do refunds take", "relevant": ["policies/returns.md"]}
    {"query": "...", "relevant": {"policies/returns.md#2": 2, "policies/returns.md#3": 1}, "groups": ["staff"]}

`relevant` lists document ids (any chunk of the document counts, and the ranking is read per
document, each document at its best chunk's rank) or chunk ids; a mapping gives graded
relevance for nDCG. Or `relevant_text` lists passages: a chunk is relevant when it contains one
(whitespace and case aside), so the labels survive a change of chunk settings and the ranking is
read per chunk. `groups` is the caller the query is asked as (default: every group, an
operator's view).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmkit.errors import DataError
from slmkit.retrieval.search import Mode, Retriever

MODES: tuple[Mode, ...] = ("bm25", "dense", "rrf", "weighted")


@dataclass(frozen=True)
class Query:
    text: str
    relevant: dict[str, float]  # id -> gain
    groups: tuple[str, ...] | None
    by_document: bool  # the ids are documents, not chunks
    passages: tuple[str, ...] = ()  # relevant_text: a chunk holding one of these is relevant


@dataclass
class RetrievalEval:
    queries: int
    ks: tuple[int, ...]
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # mode -> metric -> value

    def summary_lines(self) -> list[str]:
        names = [f"recall@{k}" for k in self.ks] + ["mrr", "ndcg@10"]
        lines = [f"{self.queries} queries", f"{'ranking':<10}" + "".join(f"{n:>11}" for n in names)]
        for mode, values in self.metrics.items():
            lines.append(f"{mode:<10}" + "".join(f"{values[n]:>11.3f}" for n in names))
        return lines


def read_qrels(path: Path) -> list[Query]:
    """The queries of a qrels file; a malformed line is a DataError naming it."""
    queries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{where}: not JSON ({exc.msg})", hint="one JSON object per line") from None
        text, relevant = (value.get("query"), value.get("relevant")) if isinstance(value, dict) else (None, None)
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{where}: field 'query' must be non-empty text", hint='write {"query": "...", ...}')
        passages = value.get("relevant_text")
        if relevant is None and isinstance(passages, list) and passages and all(isinstance(p, str) for p in passages):
            groups = value.get("groups")
            queries.append(Query(text, {}, tuple(groups) if groups is not None else None, False, tuple(passages)))
            continue
        if isinstance(relevant, list) and relevant and all(isinstance(r, str) for r in relevant):
            gains = {r: 1.0 for r in relevant}
        elif isinstance(relevant, dict) and relevant and all(isinstance(v, (int, float)) for v in relevant.values()):
            gains = {str(k): float(v) for k, v in relevant.items()}
        else:
            raise DataError(
                f"{where}: field 'relevant' must be a non-empty list of document or chunk ids, or a mapping id -> "
                "grade (or 'relevant_text': a list of passages)",
                hint='e.g. "relevant": ["policies/returns.md"]',
            )
        groups = value.get("groups")
        if groups is not None and not (isinstance(groups, list) and all(isinstance(g, str) for g in groups)):
            raise DataError(f"{where}: field 'groups' must be a list of group names", hint='e.g. "groups": ["staff"]')
        by_document = all("#" not in r for r in gains)
        queries.append(Query(text, gains, tuple(groups) if groups is not None else None, by_document))
    if not queries:
        raise DataError(f"{path}: no queries", hint="one JSON object per line with 'query' and 'relevant'")
    return queries


def evaluate_retrieval(
    retriever: Retriever,
    queries: list[Query],
    *,
    ks: tuple[int, ...] = (1, 3, 5, 10),
    all_groups: tuple[str, ...] = (),
    modes: tuple[Mode, ...] = MODES,
    dense_weight: float = 0.5,
) -> RetrievalEval:
    """Every metric for every ranking, averaged over the queries."""
    depth = max(*ks, 10)
    result = RetrievalEval(len(queries), ks)
    for mode in modes:
        sums: dict[str, float] = {}
        for query in queries:
            groups = query.groups if query.groups is not None else all_groups
            hits = retriever.search(
                query.text,
                groups=groups,
                k=depth * 4 if query.by_document else depth,
                mode=mode,
                dense_weight=dense_weight,
            )
            ranked = [h.chunk.doc_id if query.by_document else h.chunk.id for h in hits]
            relevant = query.relevant or _holding(retriever, query.passages, groups)
            for name, value in query_metrics(list(dict.fromkeys(ranked))[:depth], relevant, ks).items():
                sums[name] = sums.get(name, 0.0) + value
        result.metrics[mode] = {name: total / len(queries) for name, total in sums.items()}
    return result


def _holding(retriever: Retriever, passages: tuple[str, ...], groups: tuple[str, ...]) -> dict[str, float]:
    """The chunks (among those the caller may see) holding one of the relevant passages."""
    store = retriever.store
    where, params = store.visible_filter(groups)
    wanted = [" ".join(p.lower().split()) for p in passages]
    with store.lock:
        rows = store.conn.execute(f"SELECT chunk_id, text FROM chunks WHERE {where}", params).fetchall()
    return {cid: 1.0 for cid, text in rows if any(p in " ".join(text.lower().split()) for p in wanted)}


def query_metrics(ranked: list[str], relevant: dict[str, float], ks: tuple[int, ...]) -> dict[str, float]:
    """recall@k for each k, reciprocal rank and nDCG@10 of one ranking."""
    found = [i for i, r in enumerate(ranked) if r in relevant]
    if not relevant:  # a passage no visible chunk holds: nothing could be found
        return {**{f"recall@{k}": 0.0 for k in ks}, "mrr": 0.0, "ndcg@10": 0.0}
    out: dict[str, Any] = {f"recall@{k}": sum(1 for i in found if i < k) / len(relevant) for k in ks}
    out["mrr"] = 1.0 / (found[0] + 1) if found else 0.0
    dcg = sum(relevant[ranked[i]] / math.log2(i + 2) for i in found if i < 10)
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(relevant.values(), reverse=True)[:10]))
    out["ndcg@10"] = dcg / ideal if ideal else 0.0
    return out
