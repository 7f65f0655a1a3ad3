"""Exact duplicates and conflicting labels, by dedup key (the input, casefolded, spaces collapsed).

Copies of a row teach nothing new and, split apart, leak the same ticket into train and gold:
the first (in source order) is kept. An input that carries two different answers is
ambiguous: training on it teaches a coin flip, and grading on it punishes either answer, so
every row of that input is rejected until a person settles the label.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from slmkit.data.dataset import Example
from slmkit.data.rows import Reject, Row, answer_difference

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
        answers = {json.dumps(rows[i].example.output, sort_keys=True) for i in group}
        if len(answers) > 1:
            others = [rows[i].example for i in group if i != index]
            rejects.append(row.reject("conflict", _conflict_reason(row.example, others), "dedup"))
        elif group[0] == index:
            kept.append(row)
        else:
            rejects.append(row.reject("duplicate", f"exact duplicate of {rows[group[0]].example.source}", "dedup"))
    return kept, rejects


def _conflict_reason(example: Example, others: list[Example]) -> str:
    listed = [
        f"{other.source} ({answer_difference(example.output, other.output) or 'same answer'})"
        for other in others[:MAX_LISTED]
    ]
    more = f" and {len(others) - MAX_LISTED} more" if len(others) > MAX_LISTED else ""
    return (
        f"conflicting labels: the same input is also at {', '.join(listed)}{more}; every row of this input "
        "is rejected until the labels agree"
    )
