"""Synthetic rows against the real data and the gold set: exact, near (MinHash) and semantic (MiniLM).

The same measures and thresholds as the data build (`dedup`, `near`, `semantic`), with one rule
per comparison, in this order at each level:

1. decontamination: a synthetic row that copies a gold row (the same normalized input, a
   MinHash estimate at data.dedup.near.threshold, or a MiniLM cosine at
   data.dedup.semantic.threshold) is a `gold_leak`, whatever its answer;
2. against the real train and validation rows: the same answer is a duplicate (it teaches
   nothing new), another answer a `conflict` (the teacher changed a person's label), unless the
   answers differ only in values each row copies from its own input;
3. between synthetic rows: the first in plan order stays, later copies go; copies with different
   answers are all conflicts.

Semantic decontamination runs even when the build's semantic dedup is off (synth.semantic):
paraphrase is exactly what a teacher is asked for, and shingles cannot see it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from slmkit.config import ProjectConfig
from slmkit.data.clean import Cleaner
from slmkit.data.dataset import Example
from slmkit.data.dedup import FollowsInput, answer_hash
from slmkit.data.normalize import dedup_key
from slmkit.data.synth_checks import Candidate
from slmkit.data.synth_plan import answer_of
from slmkit.errors import DataError
from slmkit.task import Task


def deduplicate(
    config: ProjectConfig,
    cleaner: Cleaner,
    candidates: Sequence[Candidate],
    existing: Sequence[Example],
    gold: Sequence[Example],
) -> dict[str, Any]:
    """Reject copies among `candidates` (alive ones, in plan order); the counts per level for the report."""
    alive = [c for c in candidates if c.alive and c.example is not None]
    stats: dict[str, Any] = {}
    judge = _Judge(config, alive, existing)
    cand_text = [c.example.dedup_text for c in alive]  # type: ignore[union-attr]
    real_text = [e.dedup_text for e in existing]
    gold_text = [e.dedup_text for e in gold]

    # exact
    gold_keys = {dedup_key(t): e for t, e in zip(gold_text, gold, strict=True)}
    real_keys: dict[str, int] = {}
    for j, text in enumerate(real_text):
        real_keys.setdefault(dedup_key(text), j)
    first: dict[str, int] = {}
    for i, c in enumerate(alive):
        if c.key in gold_keys:
            judge.gold(i, gold_keys[c.key], "exact copy")
        elif c.key in real_keys:
            judge.real(i, real_keys[c.key], "duplicate", "the same input as")
        elif c.key in first:
            judge.synthetic(first[c.key], i, "duplicate", "the same input as")
        else:
            first[c.key] = i
    stats["exact"] = judge.take()

    near = config.data.dedup.near
    if near.enabled and alive:
        from slmkit.data.near import cross_pairs, near_pairs

        signatures = cleaner.signatures([*cand_text, *real_text, *gold_text])
        mine = signatures[: len(alive)]
        real_sig = signatures[len(alive) : len(alive) + len(real_text)]
        gold_sig = signatures[len(alive) + len(real_text) :]
        how = f"a near copy (MinHash >= {near.threshold:g}) of"
        for i, g in cross_pairs(mine, gold_sig, near.threshold).tolist() if len(gold_sig) else []:
            judge.gold(i, gold[g], f"a near copy (MinHash >= {near.threshold:g})")
        for i, j in cross_pairs(mine, real_sig, near.threshold).tolist() if len(real_sig) else []:
            judge.real(i, j, "near_duplicate", how)
        for i, j in near_pairs(mine, near.threshold).tolist() if len(mine) > 1 else []:
            judge.synthetic(i, j, "near_duplicate", how)
        stats["near"] = judge.take()

    semantic = config.data.dedup.semantic
    if (config.synth.semantic or semantic.enabled) and any(c.alive for c in alive):
        from slmkit.data.semantic import Embedder, cross_similar, similar_pairs

        total = len(alive) + len(real_text) + len(gold_text)
        if total > semantic.max_rows:
            raise DataError(
                f"comparing {len(alive)} synthetic rows with {len(real_text)} real and {len(gold_text)} gold rows "
                f"by meaning embeds {total} texts, over data.dedup.semantic.max_rows={semantic.max_rows}",
                hint="raise max_rows, or set synth.semantic: false to compare exactly and by MinHash only",
            )
        embeddings = Embedder(batch_size=semantic.batch_size).embed([*cand_text, *real_text, *gold_text])
        mine = embeddings[: len(alive)]
        real_emb = embeddings[len(alive) : len(alive) + len(real_text)]
        gold_emb = embeddings[len(alive) + len(real_text) :]
        how = f"the same meaning (MiniLM cosine >= {semantic.threshold:g}) as"
        pairs, _ = cross_similar(mine, gold_emb, semantic.threshold) if len(gold_emb) else (np.zeros((0, 2)), None)
        for i, g in pairs.astype(np.int64).tolist():
            judge.gold(i, gold[g], f"a semantic copy (MiniLM cosine >= {semantic.threshold:g})")
        pairs, _ = cross_similar(mine, real_emb, semantic.threshold) if len(real_emb) else (np.zeros((0, 2)), None)
        for i, j in pairs.astype(np.int64).tolist():
            judge.real(i, j, "semantic_duplicate", how)
        pairs, _ = similar_pairs(mine, semantic.threshold) if len(mine) > 1 else (np.zeros((0, 2)), None)
        for i, j in pairs.astype(np.int64).tolist():
            judge.synthetic(i, j, "semantic_duplicate", how)
        stats["semantic"] = judge.take()
    return stats


class _Judge:
    """Applies the rules to pairs found at one level and counts what each level rejected."""

    def __init__(self, config: ProjectConfig, alive: Sequence[Candidate], existing: Sequence[Example]) -> None:
        self.alive = alive
        self.existing = existing
        self.task = Task.from_config(config)
        self.answers = [answer_hash(c.example.output) for c in alive]  # type: ignore[union-attr]
        self.rows = [c.example.as_dict() for c in alive]  # type: ignore[union-attr]
        self.rows += [{**e.as_dict(), "output": answer_of(self.task, e.output)} for e in existing]
        self.follows = FollowsInput(config.output_schema(), lambda i: self.rows[i])
        self.counts: dict[str, int] = {}

    def _reject(self, i: int, kind: str, reason: str) -> None:
        candidate = self.alive[i]
        if candidate.alive:
            candidate.reject(kind, reason)
            self.counts[kind] = self.counts.get(kind, 0) + 1

    def gold(self, i: int, row: Example, how: str) -> None:
        self._reject(i, "gold_leak", f"{how} of gold row {row.id}: decontaminated, so the gold set stays unseen")

    def real(self, i: int, j: int, kind: str, how: str) -> None:
        if not self.alive[i].alive:
            return
        row = self.existing[j]
        same = self.answers[i] == answer_hash(answer_of(self.task, row.output)) or self.follows(i, len(self.alive) + j)
        if same:
            self._reject(i, kind, f"{how} real row {row.id}")
        else:
            self._reject(i, "conflict", f"{how} real row {row.id}, with another answer: the person's label stands")

    def synthetic(self, i: int, j: int, kind: str, how: str) -> None:
        a, b = self.alive[i], self.alive[j]
        if not (a.alive and b.alive):
            return
        if self.answers[i] == self.answers[j] or self.follows(i, j):
            self._reject(j, kind, f"{how} synthetic row {a.row_id}, which is kept")
        else:
            self._reject(j, "conflict", f"{how} synthetic row {a.row_id}, with another answer")
            self._reject(i, "conflict", f"{how} synthetic row {b.row_id}, with another answer")

    def take(self) -> dict[str, int]:
        counts, self.counts = self.counts, {}
        return counts
