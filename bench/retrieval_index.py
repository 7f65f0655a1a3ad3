"""Retrieval speed: index build (documents/s with real MiniLM embeddings) and query latency at 10k and
100k chunks, per ranking, against FTS5's own bm25() query as the baseline measured in the same run.

    flock /tmp/slmkit-heavy.lock .venv/bin/python bench/retrieval_index.py [--sizes 10000 100000]

Build: the policy-qa example's documents, copied 40 times under distinct names (a few hundred
chunks), indexed from scratch by `run_index_update`: that is reading, chunking, embedding on
this CPU and one SQLite transaction.

Queries: an index of N synthetic chunks (sentences drawn from a 5,000-word vocabulary with a
Zipf-like skew, in 1,000 documents, a third of them in a restricted group) with random unit
vectors, written through the same `IndexStore.replace_documents`; the vectors' values do not
change the cost of exact cosine. Each query is timed as a caller with no groups (it sees two
thirds of the rows); the query embedding (one MiniLM call, measured separately) is excluded from
the ranking times and reported once. The baseline is timed on the first 8 queries only.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "policy-qa"
BASELINE_QUERIES = 8


def build_speed(work: Path) -> dict[str, Any]:
    from slmkit.config import load_config
    from slmkit.retrieval import run_index_update

    project = work / "build"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".slmkit"))
    docs = sorted(p for p in (project / "docs").rglob("*") if p.suffix in (".md", ".html"))
    for copy in range(1, 40):
        for doc in docs:
            target = doc.with_name(f"{doc.stem}-{copy}{doc.suffix}")
            target.write_text(doc.read_text().replace("Lumora", f"Lumora{copy}"))
    config = load_config(project)
    result = run_index_update(config, rebuild=True)
    again = run_index_update(config)
    return {
        "documents": result.documents,
        "chunks": result.chunks,
        "seconds": round(result.seconds, 2),
        "documents_per_s": round(result.documents / result.seconds, 1),
        "chunks_per_s": round(result.chunks / result.seconds, 1),
        "noop_update_seconds": round(again.seconds, 3),
    }


def synthetic_index(path: Path, chunks: int, seed: int = 5) -> list[str]:
    """An index of `chunks` synthetic chunks; returns query texts drawn from the same vocabulary."""
    from slmkit.retrieval.chunking import Chunk
    from slmkit.retrieval.store import IndexStore, NewDocument

    rng = random.Random(seed)
    vectors = np.random.default_rng(seed)
    vocab = [f"w{n}{''.join(rng.choice('abcdefghij') for _ in range(3))}" for n in range(5000)]
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(vocab))]
    per_doc = max(1, chunks // 1000)
    docs = []
    for d in range(-(-chunks // per_doc)):
        groups = ("staff",) if d % 3 == 0 else ()
        doc_chunks = []
        for c in range(per_doc):
            text = " ".join(rng.choices(vocab, weights, k=60)) + "."
            doc_chunks.append(
                Chunk(f"doc{d}.md#{c + 1}", f"doc{d}.md", f"Doc {d}", "Section", 0, len(text), text, groups)
            )
        emb = vectors.standard_normal((len(doc_chunks), 384)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
        docs.append(NewDocument(f"doc{d}.md", "md", f"Doc {d}", groups, f"h{d}", doc_chunks, emb))
    with IndexStore(path) as store:
        for lo in range(0, len(docs), 200):
            store.replace_documents(docs[lo : lo + 200], [], {"settings": "synthetic"})
    return [" ".join(rng.choices(vocab, weights, k=4)) for _ in range(60)]


class _FixedEmbedder:
    """The query's vector, precomputed: ranking times exclude the MiniLM call (timed apart)."""

    def __init__(self, dim: int = 384) -> None:
        self.vector = np.ones((1, dim), dtype=np.float32) / np.sqrt(dim)

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.repeat(self.vector, len(texts), axis=0)


def query_latency(path: Path, queries: list[str]) -> dict[str, Any]:
    from slmkit.retrieval import Retriever
    from slmkit.retrieval.store import IndexStore
    from slmkit.retrieval.tokens import query_terms

    out: dict[str, Any] = {}
    with IndexStore(path) as store:
        retriever = Retriever(store, _FixedEmbedder())
        retriever.search("warm up", groups=[], k=3)  # loads the vector matrix once per generation
        where, params = store.visible_filter([])

        def fts5_baseline(query: str) -> None:  # FTS5's own ranking with the access filter in the query
            match = " OR ".join(f'"{t}"' for t in query_terms(query))
            store.conn.execute(
                "SELECT rowid, bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? AND rowid IN "
                f"(SELECT id FROM chunks WHERE {where}) ORDER BY s LIMIT 50",
                [match, *params],
            ).fetchall()

        timers = {
            "fts5 bm25() (baseline)": fts5_baseline,
            "bm25 (caller statistics)": lambda q: retriever.search(q, groups=[], k=10, mode="bm25"),
            "dense (numpy cosine)": lambda q: retriever.search(q, groups=[], k=10, mode="dense"),
            "rrf (both)": lambda q: retriever.search(q, groups=[], k=10, mode="rrf"),
        }
        for name, fn in timers.items():
            times = []
            # FTS5's bm25() query takes seconds per query at 100k chunks: a few queries tell its median.
            for query in queries[:BASELINE_QUERIES] if name.startswith("fts5") else queries:
                began = time.perf_counter()
                fn(query)
                times.append((time.perf_counter() - began) * 1000)
            times.sort()
            out[name] = {
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(times[int(0.95 * len(times)) - 1], 2),
            }
    return out


def main() -> None:
    from slmkit.data.semantic import Embedder

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slmkit-retrieval-bench-") as tmp:
        work = Path(tmp)
        build = build_speed(work)
        print(
            f"index build: {build['documents']} documents, {build['chunks']} chunks in {build['seconds']}s = "
            f"{build['documents_per_s']} documents/s ({build['chunks_per_s']} chunks/s, MiniLM on this CPU); "
            f"an update with nothing changed: {build['noop_update_seconds']}s"
        )
        embedder = Embedder(batch_size=1)
        embedder.embed(["warm up"])
        times = []
        for n in range(30):
            began = time.perf_counter()
            embedder.embed([f"how long is the warranty on product {n}"])
            times.append((time.perf_counter() - began) * 1000)
        print(f"query embedding (MiniLM, one query): p50 {statistics.median(times):.1f} ms")
        for size in args.sizes:
            path = work / f"synthetic-{size}.db"
            began = time.perf_counter()
            queries = synthetic_index(path, size)
            print(f"\n{size:,} chunks (written in {time.perf_counter() - began:.0f}s); caller sees ~2/3 of them")
            latency = query_latency(path, queries)
            baseline = latency["fts5 bm25() (baseline)"]["p50_ms"]
            print(f"{'ranking':<28}{'p50 ms':>10}{'p95 ms':>10}{'speed-up vs fts5 p50':>22}")
            for name, value in latency.items():
                print(f"{name:<28}{value['p50_ms']:>10.2f}{value['p95_ms']:>10.2f}{baseline / value['p50_ms']:>21.1f}x")


if __name__ == "__main__":
    main()
