"""Exact duplicates and conflicting labels, by dedup key (the input, casefolded, spaces collapsed).

Copies of a row teach nothing new and, split apart, leak the same ticket into train and gold:
the first (in source order) is kept. An input that carries two different answers is
ambiguous: training on it teaches a coin flip, and grading on it punishes either answer, so
every row of that input is rejected until a person settles the label.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from slmkit.data.rows import Reject, Row

MAX_LISTED = 5


def drop_duplicates(rows: Sequence[Row]) -> tuple[list[Row], list[Reject]]:
    """(kept rows in source order, rejects for duplicates and conflicts in source order)."""
    members: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        members.setdefault(row.key, []).append(index)

    kept: list[Row] = []
    rejects: list[Reject] = []
    for index, row in enumerate(rows):
        group = members[row.key]
        if len(group) == 1:
            kept.append(row)
            continue
        answers = {json.dumps(rows[i].output, sort_keys=True) for i in group}
        if len(answers) > 1:
            others = [rows[i] for i in group if i != index]
            rejects.append(_reject(row, "conflict", _conflict_reason(row, others)))
        elif group[0] == index:
            kept.append(row)
        else:
            rejects.append(_reject(row, "duplicate", f"exact duplicate of {rows[group[0]].source}"))
    return kept, rejects


def _conflict_reason(row: Row, others: list[Row]) -> str:
    listed = []
    for other in others[:MAX_LISTED]:
        differing = [
            f"{name} {row.output.get(name)!r} here, {other.output.get(name)!r} there"
            for name in dict.fromkeys([*row.output, *other.output])
            if row.output.get(name) != other.output.get(name)
        ]
        listed.append(f"{other.source} ({'; '.join(differing) or 'same answer'})")
    more = f" and {len(others) - MAX_LISTED} more" if len(others) > MAX_LISTED else ""
    return (
        f"conflicting labels: the same input is also at {', '.join(listed)}{more}; every row of this input "
        "is rejected until the labels agree"
    )


def _reject(row: Row, kind: str, reason: str) -> Reject:
    return Reject(
        source=row.source,
        id=row.id,
        kind=kind,
        reason=reason,
        stage="dedup",
        raw={"input": row.input, "output": row.output},
    )
