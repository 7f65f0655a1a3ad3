"""What a data build did: counts per split, label and reject kind, and the accounting check.

Accounting: every non-blank input row is in exactly one of train, validation, gold or
rejects. A locked gold set may hold rows that are no longer in the sources, so the check
counts the gold rows that came from this build's input (`gold_from_sources`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmkit.data.dataset import Example
from slmkit.data.ingest import SourceStats
from slmkit.data.rows import REJECT_KINDS, RejectLog, Row


@dataclass(frozen=True)
class DataBuildResult:
    """A registered dataset version and what happened to every input row."""

    version: str
    digest: str
    path: Path
    counts: dict[str, Any]
    gold_hash: str
    gold_reused: bool

    def summary_lines(self) -> list[str]:
        """A few lines for the CLI: rows in and out, rejects by kind, the gold set, where to look."""
        c = self.counts
        by_kind = ", ".join(f"{n} {kind}" for kind, n in c["rejected_by_reason"].items())
        lines = [
            f"dataset {self.version}: {c['input']} rows in: {c['train']} train, {c['validation']} validation, "
            f"{c['gold']} gold, {c['rejected']} rejected" + (f" ({by_kind})" if by_kind else "")
        ]
        kept = c["train"] + c["validation"] + c["gold_from_sources"]
        lines.append(
            f"accounting: {c['input']} in = {kept} kept + {c['rejected']} rejected"
            + (f" ({c['blank_lines']} blank lines skipped)" if c["blank_lines"] else "")
        )
        if self.gold_reused:
            gold = f"gold set sha256:{self.gold_hash[:12]} kept as locked (byte-identical)"
            if c["gold"] > c["gold_from_sources"]:
                gold += f"; {c['gold'] - c['gold_from_sources']} of its rows are no longer in the sources"
        else:
            gold = f"gold set sha256:{self.gold_hash[:12]} drawn and locked: later builds keep it"
        lines.append(gold)
        if c["rejected"]:
            lines.append(f"rejected rows with their line and reason: {self.path / 'rejects.jsonl'}")
        return lines


def build_counts(
    *,
    sources: Sequence[SourceStats],
    rejects: RejectLog,
    train: Sequence[Row],
    validation: Sequence[Row],
    gold: Sequence[Example],
    gold_from_sources: int,
    labels: list[Any] | None,
) -> dict[str, Any]:
    """The counts in report.json, manifest.json, the registry record and DataBuildResult."""
    counts: dict[str, Any] = {
        "input": sum(s.rows for s in sources),
        "blank_lines": sum(s.blank_lines for s in sources),
        "kept": len(train) + len(validation) + gold_from_sources,
        "rejected": rejects.total,
        "train": len(train),
        "validation": len(validation),
        "gold": len(gold),
        "gold_from_sources": gold_from_sources,
        # In REJECT_KINDS order, so the report reads the same way in every build.
        "rejected_by_reason": {kind: rejects.by_kind[kind] for kind in REJECT_KINDS if rejects.by_kind[kind]},
        "by_label": {},
    }
    if labels is not None:
        for split, rows in (("train", train), ("validation", validation), ("gold", gold)):
            seen = Counter(_label_name(row.label) for row in rows)
            counts["by_label"][split] = {_label_name(label): seen[_label_name(label)] for label in labels}
    return counts


def check_accounting(counts: dict[str, Any]) -> None:
    """Raise if a row went missing or was counted twice: that is a bug in slmkit, not in the data."""
    placed = counts["train"] + counts["validation"] + counts["gold_from_sources"] + counts["rejected"]
    if counts["input"] != placed:
        raise RuntimeError(
            f"slmkit bug: {counts['input']} input rows but {placed} placed (train {counts['train']} + "
            f"validation {counts['validation']} + gold {counts['gold_from_sources']} + rejected "
            f"{counts['rejected']}); please report it with the data that causes it"
        )


def report_json(counts: dict[str, Any], sources: Sequence[SourceStats]) -> dict[str, Any]:
    """report.json: the counts, each source, and what each reject kind that occurred means."""
    return {
        "counts": counts,
        "sources": [s.as_dict() for s in sources],
        "reject_kinds": {kind: REJECT_KINDS[kind] for kind in counts["rejected_by_reason"]},
    }


def _label_name(label: Any) -> str:
    return label if isinstance(label, str) else json.dumps(label)
