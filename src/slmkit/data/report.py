"""What a data build did: counts per split, label and reject kind, and the accounting check.

Accounting: every non-blank input row is in exactly one of train, validation, gold or
rejects. A locked gold set may hold rows that are no longer in the sources, so the check
counts the gold rows that came from this build's input (`gold_from_sources`).
"""

from __future__ import annotations

from collections.abc import Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slmkit.data.ingest import SourceStats
from slmkit.data.rows import REJECT_KINDS, RejectLog


@dataclass(frozen=True)
class DataBuildResult:
    """A registered dataset version and what happened to every input row."""

    version: str
    digest: str
    path: Path
    counts: dict[str, Any]
    gold_hash: str
    gold_reused: bool
    timings: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)  # report.json

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
            sliced = (self.report.get("reviewed") or {}).get("gold_slice")
            gold = (
                f"gold set sha256:{self.gold_hash[:12]}: the locked rows kept byte-identical, {sliced} appended"
                if sliced
                else f"gold set sha256:{self.gold_hash[:12]} kept as locked (byte-identical)"
            )
            if c["gold"] > c["gold_from_sources"]:
                gold += f"; {c['gold'] - c['gold_from_sources']} of its rows are no longer in the sources"
        else:
            sources = (self.report.get("splits") or {}).get("gold_sources") or []
            drawn = f"from {', '.join(sources)} (role: gold)" if sources else "drawn"
            gold = f"gold set sha256:{self.gold_hash[:12]} {drawn} and locked: later builds keep it"
        leaks = {k: c["rejected_by_reason"].get(k, 0) for k in ("gold_leak", "gold_overlap", "gold_unlocked")}
        if any(leaks.values()):
            gold += (
                f"; {sum(leaks.values())} rows kept out of training as copies of gold rows ("
                + ", ".join(f"{n} {k}" for k, n in leaks.items() if n)
                + ")"
            )
        lines.append(gold)
        reviewed = self.report.get("reviewed")
        if reviewed:
            read = next((s["rows"] for s in self.report.get("sources", []) if s["path"] == reviewed["source"]), 0)
            line = f"reviewed production items: {read} rows read from {reviewed['source']}"
            if reviewed["gold_slice"]:
                line += (
                    f"; {reviewed['gold_slice']} of the random share added to the gold set as a production slice "
                    f"({reviewed['gold_slice_by']}), and the gold set locked again"
                )
            else:
                line += (
                    "; they train, the gold set stays as locked (data.reviewed.gold_extra starts a production slice)"
                )
            lines.append(line)
        if c["rejected"]:
            lines.append(f"rejected rows with their line and reason: {self.path / 'rejects.jsonl'}")
        pii = self.report.get("pii") or {}
        if pii.get("enabled"):
            found = ", ".join(f"{kind} {n}" for kind, n in pii["by_type"].items()) or "none found"
            canaries = pii["canaries"]
            lines.append(
                f"personal data: replaced in {pii['rows_with_pii']} rows ({found})"
                + (f"; {canaries['checked']} canaries checked, none survived" if canaries["checked"] else "")
            )
        dups = self.report.get("duplicates") or {}
        found_dups = [f"{dups[k]['removed']} {k}" for k in ("exact", "near", "semantic") if k in dups]
        if found_dups:
            conflicts = self.report.get("conflicts") or {}
            lines.append(
                f"duplicates removed: {', '.join(found_dups)}; conflicting labels: {conflicts.get('clusters', 0)} "
                f"clusters ({conflicts.get('rows', 0)} rows)"
            )
        lines.append(f"data card: {self.path / 'report.html'}")
        if self.timings:
            total = sum(self.timings.values())
            phases = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in self.timings.items())
            lines.append(f"took {total:.1f}s ({phases})")
        return lines


def build_counts(
    *,
    sources: Sequence[SourceStats],
    rejects: RejectLog,
    train: Sized,
    validation: Sized,
    gold: Sized,
    gold_from_sources: int,
    by_label: dict[str, dict[str, int]],
) -> dict[str, Any]:
    """The counts in report.json, manifest.json, the registry record and DataBuildResult."""
    return {
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
        "by_label": by_label,
    }


def length_histograms(values: np.ndarray, rows_by_split: dict[str, list[int]], bins: int = 20) -> dict[str, Any]:
    """A histogram per split over shared bin edges, with percentiles of the kept rows.

    Negative values mean "not measured" (token lengths of a large build are measured on a
    sample) and are left out; `measured` says how many rows the figures describe.
    """
    measured: dict[str, np.ndarray] = {}
    for split, rows in rows_by_split.items():
        index = np.asarray(rows, dtype=np.int64)
        measured[split] = index[values[index] >= 0] if values.size else index[:0]
    kept = np.concatenate(list(measured.values())) if measured else np.zeros(0, dtype=np.int64)
    chosen = values[kept] if kept.size else np.zeros(0)
    if chosen.size == 0:
        return {"edges": [], "counts": {}, "p50": 0, "p95": 0, "max": 0, "measured": 0}
    top = int(chosen.max())
    step = max(1, -(-top // bins))
    edges = list(range(0, step * bins + 1, step))
    counts = {split: np.histogram(values[idx], bins=edges)[0].tolist() for split, idx in measured.items()}
    return {
        "edges": edges,
        "counts": counts,
        "p50": int(np.percentile(chosen, 50)),
        "p95": int(np.percentile(chosen, 95)),
        "max": top,
        "measured": int(chosen.size),
    }


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
