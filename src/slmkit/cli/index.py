"""`slmkit index build | update | search | eval`: the retrieval index over data.documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from slmkit.cli.common import ProjectOption, load, say

GroupsOption = Annotated[
    list[str] | None,
    typer.Option("--group", "-g", help="Search as a caller in this access group (repeat for several)."),
]


def build(project: ProjectOption = Path(".")) -> None:
    """Chunk and embed every document of data.documents into .slmkit/index.db (one transaction)."""
    from slmkit.retrieval import run_index_update

    for line in run_index_update(load(project), rebuild=True, log=say).summary_lines():
        say(line)


def update(project: ProjectOption = Path(".")) -> None:
    """Re-index changed documents (by content hash), drop removed ones; unchanged ones are not touched."""
    from slmkit.retrieval import run_index_update

    for line in run_index_update(load(project), log=say).summary_lines():
        say(line)


def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    project: ProjectOption = Path("."),
    groups: GroupsOption = None,
    k: Annotated[int, typer.Option("-k", help="How many chunks.")] = 5,
    mode: Annotated[str, typer.Option(help="bm25, dense, rrf or weighted.")] = "rrf",
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per hit.")] = False,
) -> None:
    """The best chunks for a query among those the given groups may see (public ones without --group)."""
    from slmkit.errors import StageError
    from slmkit.retrieval import Retriever, open_index
    from slmkit.retrieval.metrics import MODES

    if mode not in MODES:
        raise StageError(f"unknown ranking '{mode}'", hint=f"one of {', '.join(MODES)}")
    config = load(project)
    with open_index(config) as store:
        if not store.generation():
            raise StageError("the index is empty", hint="run `slmkit index build` first")
        hits = Retriever(store).search(query, groups=groups or [], k=k, mode=mode)  # type: ignore[arg-type]
    for n, hit in enumerate(hits, start=1):
        if as_json:
            say(json.dumps({**hit.chunk.as_dict(), "score": hit.score, "similarity": hit.similarity}))
            continue
        chunk = hit.chunk
        say(f"{n}. {chunk.id} [{chunk.start}:{chunk.end}] {chunk.heading}  (cosine {hit.similarity:.3f})")
        say("   " + " ".join(hit.chunk.text.split())[:200])


def evaluate(
    qrels: Annotated[Path, typer.Argument(help="Labelled queries: JSONL with query and relevant ids.")],
    project: ProjectOption = Path("."),
) -> None:
    """recall@k, MRR and nDCG@10 of BM25, dense and both fusions on a labelled query set."""
    from slmkit.retrieval import Retriever, evaluate_retrieval, open_index, read_qrels

    config = load(project)
    queries = read_qrels(qrels)
    with open_index(config) as store:
        with store.lock:
            everyone = tuple(r[0] for r in store.conn.execute("SELECT DISTINCT grp FROM doc_groups WHERE grp != ''"))
        weight = config.task.retrieval.dense_weight if config.task.retrieval else 0.5
        result = evaluate_retrieval(Retriever(store), queries, all_groups=everyone, dense_weight=weight)
    for line in result.summary_lines():
        say(line)
