"""Duplicates and conflicting labels: exact, near (MinHash) and semantic (embeddings).

Copies of a row teach nothing new and, split apart, leak the same ticket into train and gold.
The rule for which copy stays is the same at every level:

1. a row of the locked gold set always stays, and every copy of it elsewhere is removed from
   the training side (`gold_overlap` for the same input with another answer, `gold_leak` for a
   near or semantic copy);
2. otherwise the first row in source order (sources in config order, then line order) stays.

An input that carries two different answers is ambiguous: training on it teaches a coin flip,
and grading on it punishes either answer. Every row of such a cluster is rejected as a
`conflict` until a person settles the label; for near and semantic copies that holds for the
pair whose answers differ.

The functions here decide on row numbers and a few numbers per row (keys, answer hashes);
`describe` reads a row back from the spool only to word a reason or fill a report example.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from slmkit.data.rows import answer_difference
from slmkit.errors import DataError

if TYPE_CHECKING:
    from slmkit.data.passes import BuildState

MAX_LISTED = 5
MAX_EXAMPLES = 25  # clusters shown per kind in report.json and the data card
SHOWN_CHARS = 240

Describe = Callable[[int], dict[str, Any]]


@dataclass
class Verdicts:
    """Rows to reject (row -> (kind, reason)) and what to show of the clusters found."""

    rejected: dict[int, tuple[str, str]] = field(default_factory=dict)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    examples: list[dict[str, Any]] = field(default_factory=list)
    conflict_examples: list[dict[str, Any]] = field(default_factory=list)
    conflict_clusters: int = 0

    def reject(self, row: int, kind: str, reason: str) -> None:
        self.rejected.setdefault(row, (kind, reason))


def deduplicate(state: BuildState, lap: Callable[[str], None]) -> None:
    """Exact, near and semantic duplicates of the spooled rows, and copies of the locked gold set.

    Works on the numbers the first pass kept (keys, answer hashes, MinHash signatures); the
    semantic stage embeds the rows still alive, and the locked gold rows the sources no longer
    hold, read back from the spool. Each stage adds its line to `state.stages`.
    """
    n = len(state.spool)
    keys, answers = state.keys.numpy(), state.answers.numpy()
    alive = np.ones(n, dtype=bool)
    for row in state.verdicts.rejected:
        alive[row] = False
    follows_input = FollowsInput(state.task.schema, state.describe)
    gold_sourced = np.zeros(n, dtype=bool)
    if state.gold_source_rows:
        gold_sourced[np.fromiter(state.gold_source_rows, dtype=np.int64)] = True
    exact(keys, answers, alive, state.describe, state.verdicts, follows_input, gold_sourced)
    after = state.alive()
    # Rows matching the locked gold set with another answer were marked while reading.
    state.stages.append({"stage": "exact dedup", "in": n, "out": int(after.sum()), "rejected": n - int(after.sum())})
    alive = after
    lap("exact dedup")

    gold_inputs = [e.dedup_text for e in state.locked.examples] if state.locked is not None else []
    gold_answers = np.array(
        [answer_hash(e.output) for e in state.locked.examples] if state.locked else [], dtype=np.uint64
    )
    all_answers = np.concatenate([answers, gold_answers])
    pinned = np.zeros(n + len(gold_inputs), dtype=bool)
    pinned[n:] = True
    for row in [*state.gold_marked, *state.gold_source_rows]:
        pinned[row] = True
    # Locked gold rows stand for themselves only when the sources no longer hold them.
    in_sources = set(state.gold_marked.values())
    virtual = np.array([n + g for g in range(len(gold_inputs)) if g not in in_sources], dtype=np.int64)

    near = state.config.data.dedup.near
    if near.enabled:
        from slmkit.data.near import near_pairs

        signatures = (
            np.concatenate(
                [*state.signatures, state.cleaner.signatures(gold_inputs)] if gold_inputs else state.signatures
            )
            if (state.signatures or gold_inputs)
            else np.zeros((0, near.num_perm), dtype=np.uint32)
        )
        rows = np.r_[np.flatnonzero(alive), virtual].astype(np.int64)
        found = near_pairs(signatures[rows], near.threshold) if rows.size > 1 else np.zeros((0, 2), np.int64)
        pairs = rows[found]
        scores = (signatures[pairs[:, 0]] == signatures[pairs[:, 1]]).mean(axis=1) if len(pairs) else np.zeros(0)
        resolve_pairs(
            "near", pairs, scores, all_answers, pinned, state.describe, state.verdicts, near.threshold, n, follows_input
        )
        state.record_stage("near dedup", alive)
        alive = state.alive()
        lap("near dedup")
    else:
        state.stages.append({"stage": "near dedup", "skipped": True})

    semantic = state.config.data.dedup.semantic
    if semantic.enabled:
        rows = np.r_[np.flatnonzero(alive), virtual].astype(np.int64)
        if rows.size > semantic.max_rows:
            raise DataError(
                f"semantic dedup over {rows.size} rows is over data.dedup.semantic.max_rows="
                f"{semantic.max_rows} (its cost grows with the square of the rows)",
                hint="raise max_rows if you can wait, or set data.dedup.semantic.enabled: false and rely on "
                "exact and near dedup",
            )
        from slmkit.data.semantic import Embedder, similar_pairs

        embedder = Embedder(batch_size=semantic.batch_size)
        texts = [state.dedup_text(int(r)) for r in rows]
        found, scores = similar_pairs(embedder.embed(texts), semantic.threshold)
        pairs = rows[found] if len(found) else np.zeros((0, 2), np.int64)
        resolve_pairs(
            "semantic",
            pairs,
            scores,
            all_answers,
            pinned,
            state.describe,
            state.verdicts,
            semantic.threshold,
            n,
            follows_input,
        )
        state.record_stage("semantic dedup", alive)
        alive = state.alive()
        lap("semantic dedup")
    else:
        state.stages.append({"stage": "semantic dedup", "skipped": True})


def exact(
    keys: np.ndarray,
    answers: np.ndarray,
    alive: np.ndarray,
    describe: Describe,
    out: Verdicts,
    follows_input: Callable[[int, int], bool] = lambda i, j: False,
    gold: np.ndarray | None = None,
) -> None:
    """Rows with equal dedup keys: the first stays, copies go; differing answers reject them all.

    A cluster holding a `gold` row (from a source with role: gold) keeps its first gold row
    instead: the other rows are gold leaks (same answer) or gold overlaps (another answer; the
    gold answer stands), so the training side never holds a gold input.
    """
    rows = np.flatnonzero(alive)
    if rows.size == 0:
        out.stats["exact"] = {"clusters": 0, "removed": 0}
        return
    order = rows[np.argsort(keys[rows], kind="stable")]
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, order.size])
    clusters = removed = 0
    for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist(), strict=True):
        group = sorted(order[start : start + size].tolist())
        gold_rows = [row for row in group if gold is not None and gold[row]]
        if gold_rows and gold is not None:
            _keep_gold(gold_rows[0], group, gold, answers, describe, out)
            continue
        differing = [row for row in group[1:] if answers[row] != answers[group[0]]]
        if differing and not all(follows_input(group[0], row) for row in differing):
            _reject_conflict(group, "the same input", describe, out, kind="exact")
            continue
        clusters += 1
        first = describe(group[0])
        removed_rows = []
        for row in group[1:]:
            out.reject(row, "duplicate", f"exact duplicate of {first['source']}")
            removed_rows.append(row)
            removed += 1
        _example(out, "exact", group[0], [(r, 1.0) for r in removed_rows], describe)
    out.stats["exact"] = {"clusters": clusters, "removed": removed}


def _keep_gold(
    kept: int, group: list[int], gold: np.ndarray, answers: np.ndarray, describe: Describe, out: Verdicts
) -> None:
    """Exact copies of a gold-source row: the gold row stays, every other row of the cluster goes."""
    shown = describe(kept)["source"]
    for row in group:
        if row == kept:
            continue
        if answers[row] != answers[kept]:
            differing = answer_difference(describe(row)["output"], describe(kept)["output"], "in gold")
            out.reject(
                row,
                "gold_overlap",
                f"the same input as gold row {shown} with another answer ({differing}); the gold answer stands",
            )
        elif gold[row]:
            out.reject(row, "duplicate", f"exact duplicate of gold row {shown}")
        else:
            out.reject(
                row,
                "gold_leak",
                f"exact copy of gold row {shown}; kept out of training so the gold set measures inputs the model "
                "has not seen",
            )


def resolve_pairs(
    kind: str,
    pairs: np.ndarray,
    scores: np.ndarray,
    answers: np.ndarray,
    pinned: np.ndarray,
    describe: Describe,
    out: Verdicts,
    threshold: float,
    n_rows: int,
    follows_input: Callable[[int, int], bool] = lambda i, j: False,
) -> None:
    """Near or semantic pairs (row numbers, i < j) -> gold leaks, conflicts and duplicates.

    Rows `>= n_rows` are locked gold rows that are not in the sources: the other row of such a
    pair is a gold leak. `pinned` rows (gold rows, in the sources or not) are never rejected.
    Pairs whose answers differ are conflicts (or, against a gold row, gold leaks: the locked
    answer stands), unless `follows_input` says the answers differ only in values each row
    copied from its own input: "play Queen" and "play Abba" are two examples, not one
    mislabelled. The remaining pairs form clusters (connected components); each keeps its
    first row, or its gold row, and the others are duplicates. A source row that is gold thus
    keeps its copies out exactly as it did in the build that drew it, so a rebuild on the lock
    gives the same verdicts.
    """
    measure = "estimated Jaccard similarity" if kind == "near" else "cosine similarity"
    dup_kind = f"{kind}_duplicate"
    leaks = 0

    def leak(row: int, gold: int, score: float, differs: bool) -> None:
        nonlocal leaks
        also = " with another answer (the locked answer stands)" if differs else ""
        shown = describe(gold)
        name = f"{shown['id']} ({shown['source']})" if shown["id"] != shown["source"] else shown["source"]
        out.reject(
            row,
            "gold_leak",
            f"{kind} duplicate ({measure} {score:.2f}) of gold row {name}{also}; kept out of training so the gold "
            "set measures tickets the model has not seen",
        )
        leaks += 1

    same: list[tuple[int, int, float]] = []
    conflicted: dict[int, list[tuple[int, float]]] = {}
    for (i, j), score in zip(pairs.tolist(), scores.tolist(), strict=True):
        if i in out.rejected or j in out.rejected or (pinned[i] and pinned[j]):
            continue
        differs = bool(answers[i] != answers[j])
        if differs and i < n_rows and j < n_rows and follows_input(i, j):
            continue  # two different questions whose answers copy what differs: both are kept
        if i >= n_rows or j >= n_rows or (differs and (pinned[i] or pinned[j])):
            gold, other = (i, j) if pinned[i] else (j, i)
            leak(other, gold, score, differs)
        elif differs:
            conflicted.setdefault(i, []).append((j, score))
            conflicted.setdefault(j, []).append((i, score))
        else:
            same.append((i, j, score))
    _reject_near_conflicts(kind, conflicted, measure, describe, out)

    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent.get(root, root) != root:
            root = parent[root]
        while parent.get(x, x) != root:
            parent[x], x = root, parent[x]
        return root

    best: dict[int, float] = {}
    for i, j, score in same:
        if i in out.rejected or j in out.rejected:
            continue
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)  # the root is the earliest row
        best[j] = max(best.get(j, 0.0), score)
        best[i] = max(best.get(i, 0.0), score)
    members: dict[int, set[int]] = {}
    for row in parent:  # every row that joined a cluster, and the root it joined
        members.setdefault(find(row), {find(row)}).add(row)
    removed = 0
    for root, group in sorted(members.items()):
        gold_rows = sorted(r for r in group if pinned[r])
        keep = root if not gold_rows or pinned[root] else gold_rows[0]
        copies = sorted(r for r in group if r != keep and not pinned[r])
        for row in copies:
            if pinned[keep] and keep != root:
                leak(row, keep, best.get(row, 0.0), False)
                continue
            out.reject(
                row,
                dup_kind,
                f"{kind} duplicate of {describe(keep)['source']} ({measure} >= {threshold:g}, best match "
                f"{best.get(row, 0.0):.2f}); the first row of the cluster is kept",
            )
            removed += 1
        _example(out, kind, keep, [(r, best.get(r, 0.0)) for r in copies], describe)
    out.stats[kind] = {"clusters": len(members), "removed": removed, "gold_leaks": leaks, "threshold": threshold}


def _reject_near_conflicts(
    kind: str, conflicted: dict[int, list[tuple[int, float]]], measure: str, describe: Describe, out: Verdicts
) -> None:
    seen: set[int] = set()
    for row in sorted(conflicted):
        if row in seen:
            continue
        # The rows linked to this one by differing answers: one cluster for the report.
        cluster, stack = set(), [row]
        while stack:
            current = stack.pop()
            if current in cluster:
                continue
            cluster.add(current)
            stack.extend(other for other, _ in conflicted.get(current, []))
        seen |= cluster
        _reject_conflict(sorted(cluster), f"a {kind}-identical input ({measure})", describe, out, kind=kind)


def _reject_conflict(group: list[int], what: str, describe: Describe, out: Verdicts, *, kind: str) -> None:
    described = {row: describe(row) for row in group}
    out.conflict_clusters += 1
    for row in group:
        if row in out.rejected:
            continue
        here = described[row]
        others = [described[r] for r in group if r != row]
        listed = [
            f"{o['source']} ({answer_difference(here['output'], o['output']) or 'same answer'})"
            for o in others[:MAX_LISTED]
        ]
        more = f" and {len(others) - MAX_LISTED} more" if len(others) > MAX_LISTED else ""
        out.reject(
            row,
            "conflict",
            f"conflicting labels: {what} is also at {', '.join(listed)}{more}; every row of this cluster is "
            "rejected until the labels agree",
        )
    if len(out.conflict_examples) < MAX_EXAMPLES:
        out.conflict_examples.append(
            {"kind": kind, "rows": [_shown(described[r], with_output=True) for r in group[: MAX_LISTED + 1]]}
        )


def _example(out: Verdicts, kind: str, kept: int, removed: list[tuple[int, float]], describe: Describe) -> None:
    if not removed or sum(1 for e in out.examples if e["kind"] == kind) >= MAX_EXAMPLES:
        return
    shown = [{**_shown(describe(row)), "similarity": round(score, 3)} for row, score in removed[:MAX_LISTED]]
    out.examples.append(
        {
            "kind": kind,
            "similarity": min(s["similarity"] for s in shown),
            "kept": _shown(describe(kept)),
            "removed": shown,
        }
    )


def _shown(row: dict[str, Any], *, with_output: bool = False) -> dict[str, Any]:
    text = row["input"]
    shown: dict[str, Any] = {
        "source": row["source"],
        "id": row["id"],
        "input": text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 3] + "...",
    }
    if with_output:
        shown["output"] = row["output"]
    return shown


class FollowsInput:
    """Whether two rows' answers differ only in values each row copied from its own input.

    Extraction answers copy spans of their input: "Play it on Netflix" and "play it on netflix"
    fold to one dedup key, yet their answers rightly say "Netflix" and "netflix"; "play Queen"
    and "play Abba" are near duplicates with different, correct answers. A field whose schema
    lists its values (enum, const) is a label, never a copy: a difference there is a conflict.
    """

    def __init__(self, schema: dict[str, Any], describe: Describe) -> None:
        properties = schema.get("properties") or {}
        self.labels = {
            name for name, spec in properties.items() if isinstance(spec, dict) and {"enum", "const"} & set(spec)
        }
        self.describe = describe

    def __call__(self, i: int, j: int) -> bool:
        a, b = self.describe(i), self.describe(j)
        here, there = a["output"], b["output"]
        if not isinstance(here, dict) or not isinstance(there, dict):
            return False
        text_a, text_b = a["input"].casefold(), b["input"].casefold()
        for name in dict.fromkeys([*here, *there]):
            mine, theirs = here.get(name), there.get(name)
            if mine == theirs:
                continue
            if name in self.labels or not (_copied(mine, text_a) and _copied(theirs, text_b)):
                return False
        return True


def _copied(value: Any, text: str) -> bool:
    """Every text or number inside `value` occurs in `text` (casefolded); nothing else may differ."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, str | int | float):
        shown = str(value).casefold().strip()
        return bool(shown) and shown in text
    if isinstance(value, list):
        return bool(value) and all(_copied(item, text) for item in value)
    if isinstance(value, dict):
        return bool(value) and all(_copied(item, text) for item in value.values())
    return False


def answer_hash(output: Any) -> int:
    """A 63-bit hash of an answer: equal for equal answers whatever their key order."""
    import hashlib

    digest = hashlib.blake2b(json.dumps(output, sort_keys=True).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def pairs_array(pairs: Iterable[tuple[int, int]]) -> np.ndarray:
    return np.array(list(pairs), dtype=np.int64).reshape(-1, 2)
