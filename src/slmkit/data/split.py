"""Seeded, stratified or grouped train / validation / gold split, deterministic and stable as data grows.

Within each label, rows are ordered by sha256(seed, dedup key): a seeded shuffle that needs no
RNG state and no dict or set order, so the same rows and seed always give the same split, and
adding rows later does not move the rows that were already there. Gold and validation use
separate orders, so a new gold draw (`gold_salt`) does not reshuffle validation.

With `groups` (data.split.group_by: a customer, a document), whole groups are drawn instead of
rows, so a group never straddles two splits; stratification by label does not apply then.
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


class Grouped(Splittable, Protocol):
    @property
    def group(self) -> str | None: ...


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
    grouped: bool = False,
) -> Split:
    """Assign every row to one split.

    Without `locked_gold`, about `gold` of each label is drawn for gold, and every label with
    two or more rows gets at least one gold row. With it, those rows are the gold set and no
    other row is drawn for gold. Either way about `validation` of each label (counted with its
    gold rows) goes to validation, and each label keeps at least one training row.
    """
    if grouped:
        return _split_groups(rows, validation=validation, gold=gold, seed=seed, locked_gold=locked_gold, salt=gold_salt)
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


def _split_groups(
    rows: Sequence[Any], *, validation: float, gold: float, seed: int, locked_gold: Collection[int] | None, salt: str
) -> Split:
    """Whole groups to gold until its share is reached, then to validation; the rest train.

    A row without a group value is a group of its own. With a locked gold set, the groups of its
    rows are gold and no other group is drawn (the build has already kept the other rows of those
    groups out of training).
    """
    members: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        members.setdefault(f"g:{row.group}" if row.group is not None else f"k:{row.key}", []).append(index)
    n = len(rows)
    gold_rows: list[int] = []
    valid: list[int] = []
    train: list[int] = []
    if locked_gold is None:
        by_gold_rank = sorted(members, key=lambda g: _rank("gold", seed, salt, g))
        target = min(_share(n, gold), n - 1) if n > 1 else 0
        taken = set()
        for name in by_gold_rank:
            if len(gold_rows) >= max(target, 1 if gold > 0 and n >= 2 else 0):
                break
            if len(gold_rows) + len(members[name]) >= n:
                continue  # never give every row to gold
            gold_rows.extend(members[name])
            taken.add(name)
    else:
        taken = {name for name, rows_of in members.items() if any(i in locked_gold for i in rows_of)}
        gold_rows = [i for name in taken for i in members[name]]
    rest = sorted((name for name in members if name not in taken), key=lambda g: _rank("validation", seed, "", g))
    target = _share(n, validation)
    remaining = sum(len(members[name]) for name in rest)
    for name in rest:
        if len(valid) < target and remaining - len(valid) - len(members[name]) >= 1:
            valid.extend(members[name])
        else:
            train.extend(members[name])
    return Split(train=sorted(train), validation=sorted(valid), gold=sorted(gold_rows))


def _share(n: int, fraction: float) -> int:
    """round(n * fraction), halves up (Python's round() sends 2.5 to 2)."""
    return math.floor(n * fraction + 0.5)


def _rank(purpose: str, seed: int, salt: str, key: str) -> str:
    return hashlib.sha256(f"{purpose}:{seed}:{salt}:{key}".encode()).hexdigest()


def stratified_sample(keys: Sequence[str], labels: Sequence[Any], n: int, *, seed: int) -> list[int]:
    """`n` of the rows (indices, ascending), seeded: one of each label first, then each label in
    proportion to its size, so a sample covers as many labels as it can and keeps their shares.

    Within a label, rows are taken in sha256(seed, key) order, as the split draws them.
    """
    groups: dict[str, list[int]] = {}
    for index, label in enumerate(labels):
        groups.setdefault(json.dumps(label, sort_keys=True, default=str), []).append(index)
    ranked: list[tuple[bool, float, str, int]] = []
    for members in groups.values():
        ordered = sorted(members, key=lambda i: _rank("sample", seed, "", keys[i]))
        for position, index in enumerate(ordered):
            share = (position + 0.5) / len(ordered)
            ranked.append((position > 0, share, _rank("sample", seed, "", keys[index]), index))
    return sorted(index for *_, index in sorted(ranked)[:n])


def sample_rows(rows: Sequence[Any], n: int | None, label_field: str | None, *, seed: int) -> list[Any]:
    """`n` examples stratified by their label field (all of them when n is None or not smaller), in their order."""
    rows = list(rows)
    if n is None or n >= len(rows):
        return rows
    labels = [row.output.get(label_field) if label_field and isinstance(row.output, dict) else None for row in rows]
    keys = [f"{row.id}\x00{row.input}" for row in rows]
    return [rows[i] for i in stratified_sample(keys, labels, n, seed=seed)]
