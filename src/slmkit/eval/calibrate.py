"""Samples of gold and validation rows, and the refusal threshold chosen on validation.

`sample_examples` draws a seeded sample stratified by label (eval.max_items, eval.calibration_items),
so a smoke run of 480 items covers the labels rather than the first rows' few. `calibrate` has
the adapter answer validation rows with label scoring and picks the refusal threshold there
(slmkit.eval.refusal), then reports the same curve on gold beside it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from slmkit.config import ProjectConfig
from slmkit.data.split import sample_rows
from slmkit.eval.refusal import CurvePoint, choose_threshold, curve, curve_point
from slmkit.models.generate import Generation
from slmkit.task import Task


def sample_examples(rows: Sequence[Any], n: int | None, task: Task, *, seed: int) -> list[Any]:
    """`n` rows stratified by the task's label field (all of them when n is None or not smaller)."""
    return sample_rows(rows, n, task.cfg.label_field, seed=seed)


def coverage_line(what: str, sample: Sequence[Any], rows: Sequence[Any], task: Task) -> str:
    """'480 of 3,080 gold items (a seeded sample stratified by label), covering 77 of 77 labels'."""
    line = f"{len(sample):,} of {len(rows):,} {what}"
    label = task.cfg.label_field
    if label is None:
        return line + " (a seeded sample)"
    covered = {_key(row.output.get(label)) for row in sample}
    present = {_key(row.output.get(label)) for row in rows}
    return line + f" (a seeded sample stratified by label), covering {len(covered)} of {len(present)} labels"


def _key(value: Any) -> str:
    return repr(value)


@dataclass
class Calibration:
    target_precision: float
    threshold: float  # chosen on validation
    applied_threshold: float  # the one answers are refused under: 0 when the task has no refusal output
    validation_items: int
    validation_curve: list[CurvePoint] = field(default_factory=list)
    gold_curve: list[CurvePoint] = field(default_factory=list)
    gold_at_threshold: CurvePoint | None = None
    seconds: float = 0.0
    note: str = ""

    def line(self) -> str:
        if not self.validation_items:
            return f"  refusal threshold: none ({self.note})"
        head = (
            f"  refusal threshold {self.threshold:.3f} (label probability), chosen on {self.validation_items} "
            f"validation rows for refusal precision >= {self.target_precision:g}"
        )
        point = self.gold_at_threshold
        if point is not None and self.threshold > 0:
            head += (
                f"; on gold it answers {point.coverage:.1%} at accuracy {_pct(point.accuracy)} and refuses "
                f"{point.refused} ({_pct(point.refusal_precision)} of them wrong answers)"
            )
        if self.applied_threshold == 0 and self.threshold > 0:
            head += "; not applied: the task has no refusal output"
        return head + (f" [{self.seconds:.1f}s]" if self.seconds else "")

    def as_dict(self) -> dict[str, Any]:
        return {
            "target_refusal_precision": self.target_precision,
            "threshold": round(self.threshold, 6),
            "applied_threshold": round(self.applied_threshold, 6),
            "validation_items": self.validation_items,
            "validation_curve": [p.as_dict() for p in self.validation_curve],
            "gold_curve": [p.as_dict() for p in self.gold_curve],
            "seconds": round(self.seconds, 2),
            "note": self.note,
        }


def calibrate(
    config: ProjectConfig,
    dataset: Any,
    task: Task,
    tokenizer: Any,
    gold_outputs: Sequence[Generation],
    gold: Sequence[dict[str, Any]],
    settings: dict[str, Any],
    model: Any,
    log: Callable[[str], None],
) -> Calibration:
    """The refusal threshold for the adapter's label probabilities, from validation rows, and the
    curve on gold (from `gold_outputs`, before any refusal)."""
    from slmkit.eval.answer import answer

    label = task.cfg.label_field
    assert label is not None  # label scoring runs only for a task with a label field
    target = config.eval.refusal_precision
    gold_probs = [g.label.probability for g in gold_outputs]
    gold_right = [g.label.value == row.get(label) for g, row in zip(gold_outputs, gold, strict=True)]
    rows = dataset.examples("validation")
    result = Calibration(target, 0.0, 0.0, 0, gold_curve=curve(gold_probs, gold_right))
    if config.eval.calibration_items == 0:
        result.note = "eval.calibration_items is 0"
        return result
    if not rows:
        result.note = "the dataset has no validation rows"
        return result
    began = time.perf_counter()
    sample = sample_examples(rows, config.eval.calibration_items, task, seed=config.data.split.seed)
    prompts = [
        task.prompt_text(tokenizer, task.model_input(row.input, row.prompt_context), row.history) for row in sample
    ]
    schemas = [task.decoding_schema(row.prompt_context) for row in sample] if task.cfg.retrieval else None
    outputs = answer(model, tokenizer, task, prompts, **{**settings, "mode": "scored"}, logprobs=False, schema=schemas)
    probs = [g.label.probability for g in outputs]
    right = [g.label.value == row.output.get(label) for g, row in zip(outputs, sample, strict=True)]
    threshold = choose_threshold(probs, right, target)
    result.threshold = threshold
    result.applied_threshold = threshold if task.refusal_output is not None else 0.0
    result.validation_items = len(sample)
    result.validation_curve = curve(probs, right, [threshold] if threshold else [])
    result.gold_curve = curve(gold_probs, gold_right, [threshold] if threshold else [])
    result.gold_at_threshold = curve_point(gold_probs, gold_right, threshold)
    result.seconds = time.perf_counter() - began
    if threshold == 0:
        result.note = f"no threshold reaches refusal precision {target:g} on validation"
    return result


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
