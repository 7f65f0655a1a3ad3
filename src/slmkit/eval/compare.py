"""The candidate against the release an alias points at (production): the same gold items, paired
by id, scored by the candidate's task, compared item by item.

Correct / incorrect metrics (exact match, label correct, schema valid) get the exact McNemar test
on the discordant pairs and Newcombe's paired interval for the difference; F1 metrics get a
paired bootstrap interval. A `no_regression_vs` gate passes when the interval's lower bound
is at least -margin: the candidate is shown not to be worse than the release by more than that.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slmkit.eval import fields
from slmkit.eval.metrics import exact, macro_f1
from slmkit.eval.paired import Statistic, cohen_kappa, mcnemar_exact, newcombe_paired, paired_bootstrap
from slmkit.registry import Registry
from slmkit.task import Parsed, Task


@dataclass(frozen=True)
class Comparison:
    """candidate - release on one metric over the paired items."""

    metric: str
    candidate: float
    release: float
    low: float  # 95% interval of the difference
    high: float
    method: str
    p_value: float | None = None  # exact McNemar, for correct / incorrect metrics
    right_to_wrong: list[str] = field(default_factory=list)
    wrong_to_right: list[str] = field(default_factory=list)

    @property
    def difference(self) -> float:
        return self.candidate - self.release

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "candidate": round(self.candidate, 4),
            "release": round(self.release, 4),
            "difference": round(self.difference, 4),
            "ci95": [round(self.low, 4), round(self.high, 4)],
            "method": self.method,
        }
        if self.p_value is not None:
            out |= {
                "p_value": round(self.p_value, 4),
                "right_to_wrong": self.right_to_wrong,
                "wrong_to_right": self.wrong_to_right,
            }
        return out


@dataclass(frozen=True)
class Regression:
    """The comparison with the release behind `alias`; `against` None: the alias points nowhere yet."""

    alias: str
    against: str | None
    items: int = 0  # paired gold items
    unpaired: int = 0  # candidate items the release's report lacks (or graded against another gold answer)
    comparisons: dict[str, Comparison] = field(default_factory=dict)
    label_kappa: float | None = None  # agreement of the two models' labels beyond chance
    error: str | None = None  # why no comparison could be made

    def as_dict(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "against": self.against,
            "paired_items": self.items,
            "unpaired_items": self.unpaired,
            "label_kappa": None if self.label_kappa is None else round(self.label_kappa, 4),
            "error": self.error,
            "metrics": {name: c.as_dict() for name, c in self.comparisons.items()},
        }

    def lines(self) -> list[str]:
        if self.against is None:
            return [f"regression vs {self.alias}: no release behind '{self.alias}' yet"]
        if self.error is not None:
            return [f"regression vs {self.against}: not compared ({self.error})"]
        lines = [
            f"regression vs {self.against} ({self.alias}), {self.items} paired items:",
            f"  {'metric':<24}{'release':>8}{'cand.':>8}{'diff':>8}  {'95% CI':<17}{'p':>7}  right->wrong",
        ]
        for name, c in self.comparisons.items():
            p = f"{c.p_value:>7.3f}" if c.p_value is not None else f"{'-':>7}"
            lost = f"{len(c.right_to_wrong)}" if c.p_value is not None else "-"
            lines.append(
                f"  {name:<24}{c.release:>8.3f}{c.candidate:>8.3f}{c.difference:>+8.3f}  "
                f"[{c.low:+.3f}, {c.high:+.3f}]{p}  {lost}"
            )
        return lines


def item_outcomes(
    task: Task, gold: Sequence[Mapping[str, Any]], predictions: Sequence[Parsed], normalize: Mapping[str, Any]
) -> tuple[dict[str, list[bool]], dict[str, Statistic]]:
    """Per item right / wrong for exact_match, schema_validity and label_accuracy, and the F1
    metrics as functions of resampled item indices."""
    correct = {
        "exact_match": [exact(task, p, g) for g, p in zip(gold, predictions, strict=True)],
        "schema_validity": [p.valid for p in predictions],
    }
    statistics: dict[str, Statistic] = {}
    values = fields.answers(predictions)
    label, labels = task.cfg.label_field, task.labels
    if label is not None and labels is not None:
        gold_labels = [g.get(label) for g in gold]
        pred_labels = [v.get(label) if v is not None else None for v in values]
        correct["label_accuracy"] = [g == p for g, p in zip(gold_labels, pred_labels, strict=True)]
        statistics["label_macro_f1"] = lambda idx: macro_f1(
            [gold_labels[i] for i in idx], [pred_labels[i] for i in idx], labels
        )
    counts = fields.field_counts(task, gold, predictions, normalize)
    if counts:
        statistics["field_f1"] = fields.f1_statistic(list(counts.values()))
    for name, per_item in counts.items():
        statistics[f"field_f1.{name}"] = fields.f1_statistic([per_item])
    return correct, statistics


def compare(
    task: Task,
    ids: Sequence[str],
    gold: Sequence[Mapping[str, Any]],
    candidate: Sequence[Parsed],
    release: Sequence[Parsed],
    *,
    normalize: Mapping[str, Any] | None = None,
    rounds: int = 1000,
) -> dict[str, Comparison]:
    """Every paired metric the task supports: candidate vs release answers to the same gold items."""
    normalize = normalize or {}
    cand_correct, cand_stats = item_outcomes(task, gold, candidate, normalize)
    rel_correct, rel_stats = item_outcomes(task, gold, release, normalize)
    n = len(gold)
    out: dict[str, Comparison] = {}
    for name, mine in cand_correct.items():
        theirs = rel_correct[name]
        gained = [i for i in range(n) if mine[i] and not theirs[i]]
        lost = [i for i in range(n) if theirs[i] and not mine[i]]
        both = sum(a and b for a, b in zip(mine, theirs, strict=True))
        low, high = newcombe_paired(both, len(gained), len(lost), n - both - len(gained) - len(lost))
        out[name] = Comparison(
            name,
            sum(mine) / n,
            sum(theirs) / n,
            low,
            high,
            "exact McNemar; Newcombe paired interval",
            mcnemar_exact(len(gained), len(lost)),
            right_to_wrong=[ids[i] for i in lost],
            wrong_to_right=[ids[i] for i in gained],
        )
    for name, statistic in cand_stats.items():
        _, low, high = paired_bootstrap(statistic, rel_stats[name], n, rounds=rounds)
        everything = range(n)
        out[name] = Comparison(name, statistic(everything), rel_stats[name](everything), low, high, "paired bootstrap")
    return out


def regression_against(
    registry: Registry,
    task: Task,
    alias: str,
    ids: Sequence[str],
    gold: Sequence[Mapping[str, Any]],
    candidate: Sequence[Parsed],
    *,
    normalize: Mapping[str, Any] | None = None,
    rounds: int = 1000,
    label_scoring: bool | None = None,
) -> Regression:
    """Pair the candidate's answers with those the release behind `alias` recorded in its eval
    report (same gold id and same gold answer), and compare them.

    The recorded answers are the release's own greedy answers, as its rollback rehearsal proves
    they still are; so nothing is generated again here. They must have been chosen the way the
    candidate's were (`label_scoring`): generated labels against scored ones would measure the
    decoding, not the model, so a later evaluation of the release's run that matches is used, or
    the comparison is refused with the command that makes one.
    """
    release = registry.current(task.name, alias)
    if release is None:
        return Regression(alias, None)
    problems = registry.store.verify(release.eval_report_digest)
    if problems:
        return Regression(alias, release.ref, error=f"its eval report {'; '.join(problems)}")
    report = json.loads(registry.store.path(release.eval_report_digest).read_text(encoding="utf-8"))
    if label_scoring is not None and _scored(report) != label_scoring:
        matching = _matching_report(registry, release.run_id, label_scoring)
        if matching is None:
            return Regression(
                alias,
                release.ref,
                error=f"its eval report chose labels {_how(_scored(report))} and this evaluation "
                f"{_how(label_scoring)}: the pair would compare two decodings, not two models; evaluate "
                f"{release.ref}'s run again with these settings (slmkit eval --run {release.run_id})",
            )
        report = matching
    recorded = {str(p["id"]): p for p in report.get("predictions", []) if "adapter" in p}
    keep = [
        i
        for i, item_id in enumerate(ids)
        if item_id in recorded and task.canonical(recorded[item_id]["gold"]) == task.canonical(gold[i])
    ]
    if not keep:
        return Regression(
            alias,
            release.ref,
            unpaired=len(ids),
            error=f"its eval report answers none of these {len(ids)} gold items; evaluate it on this gold set",
        )
    paired_ids = [ids[i] for i in keep]
    paired_gold = [gold[i] for i in keep]
    theirs = [task.parse(recorded[item_id]["adapter"]["text"]) for item_id in paired_ids]
    mine = [candidate[i] for i in keep]
    kappa = None
    if task.cfg.label_field is not None:
        label = task.cfg.label_field
        kappa = cohen_kappa(*([_label(p, label) for p in side] for side in (mine, theirs)))
    return Regression(
        alias,
        release.ref,
        items=len(keep),
        unpaired=len(ids) - len(keep),
        comparisons=compare(task, paired_ids, paired_gold, mine, theirs, normalize=normalize, rounds=rounds),
        label_kappa=kappa,
    )


def _scored(report: Mapping[str, Any]) -> bool:
    """Whether a report's labels were chosen by scoring every allowed one (older reports: generated)."""
    return bool((report.get("decoding") or {}).get("label_scoring"))


def _how(scored: bool) -> str:
    return "by scoring every allowed label" if scored else "by generating them"


def _matching_report(registry: Registry, run_id: str, label_scoring: bool) -> dict[str, Any] | None:
    """The release's run's latest evaluation, when it chose labels the given way and is intact."""
    latest = registry.latest_eval(run_id)
    if latest is None or registry.store.verify(latest.digest):
        return None
    report = json.loads(registry.store.path(latest.digest).read_text(encoding="utf-8"))
    return report if _scored(report) == label_scoring else None


def _label(parsed: Parsed, label: str) -> str:
    value = parsed.value.get(label) if parsed.is_json and isinstance(parsed.value, dict) else None
    return "(invalid)" if value is None else str(value)
