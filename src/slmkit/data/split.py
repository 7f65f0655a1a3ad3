"""Seeded, stratified train / validation / gold split, deterministic and stable as data grows.

Within each label, rows are ordered by sha256(seed, dedup key): a seeded shuffle that needs no
RNG state and no dict or set order, so the same rows and seed always give the same split, and
adding rows later does not move the rows that were already there. Gold and validation use
separate orders, so a new gold draw (`gold_salt`) does not reshuffle validation.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Splittable(Protocol):
    @property
    def key(self) -> str: ...

    @property
    def label(self) -> Any: ...


@dataclass(frozen=True)
class Split:
    """Indices into the rows given to `split_rows`, each list ascending (source order)."""

    train: list[int]
    validation: list[int]
    gold: list[int]


def split_rows(
    rows: Sequence[Splittable],
    *,
    validation: float,
    gold: float,
    seed: int,
    stratify: bool,
    locked_gold: Collection[int] | None = None,
    gold_salt: str = "",
) -> Split:
    """Assign every row to one split.

    Without `locked_gold`, about `gold` of each label is drawn for gold, and every label with
    two or more rows gets at least one gold row. With it, those rows are the gold set and no
    other row is drawn for gold. Either way about `validation` of each label (counted with its
    gold rows) goes to validation, and each label keeps at least one training row.
    """
    groups: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        # json, not repr or hash(): the same label gives the same group name in every process.
        groups.setdefault(json.dumps(row.label) if stratify else "", []).append(index)

    train: list[int] = []
    valid: list[int] = []
    gold_rows: list[int] = []
    for _, members in sorted(groups.items()):
        n = len(members)
        if locked_gold is None:
            by_gold_rank = sorted(members, key=lambda i: _rank("gold", seed, gold_salt, rows[i].key))
            n_gold = min(_share(n, gold), n - 1)
            if gold > 0 and n_gold == 0 and n >= 2:
                n_gold = 1  # every label that can spare a row is represented in the gold set
            chosen = by_gold_rank[:n_gold]
        else:
            chosen = [i for i in members if i in locked_gold]
        chosen_set = set(chosen)
        rest = sorted(
            (i for i in members if i not in chosen_set),
            key=lambda i: _rank("validation", seed, "", rows[i].key),
        )
        n_valid = min(_share(n, validation), max(0, len(rest) - 1))
        gold_rows.extend(chosen)
        valid.extend(rest[:n_valid])
        train.extend(rest[n_valid:])
    return Split(train=sorted(train), validation=sorted(valid), gold=sorted(gold_rows))


def _share(n: int, fraction: float) -> int:
    """round(n * fraction), halves up (Python's round() sends 2.5 to 2)."""
    return math.floor(n * fraction + 0.5)


def _rank(purpose: str, seed: int, salt: str, key: str) -> str:
    return hashlib.sha256(f"{purpose}:{seed}:{salt}:{key}".encode()).hexdigest()
