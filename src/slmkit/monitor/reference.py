"""What a release's traffic is compared with: its eval's answers on the gold set, and its training data.

- The label mix and confidences of the release's own answers on the locked gold set, as its eval
  recorded them (the `adapter` side: decoded as serving decodes). Traffic like the gold set
  should be answered like the gold set, so this is the reference for output and confidence drift.
- The label mix of the training split, shown beside it in the report.
- The task spec the release was trained with (fields, label field), from its recorded config.

Input drift's reference (embedded training inputs) is in embedding.py.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from slmkit.config import ProjectConfig
from slmkit.registry import Registry, Release
from slmkit.task import Task


@dataclass
class TaskReference:
    release: str
    task: Task | None
    eval_labels: Counter[str] | None = None  # labels of the release's answers on the gold set
    eval_confidences: list[float] | None = None  # their confidences
    train_labels: Counter[str] | None = None  # gold labels of the training split
    problems: dict[str, str] = field(default_factory=dict)  # what is missing, and why

    @property
    def fields(self) -> list[str]:
        return self.task.fields if self.task is not None else []

    @property
    def label_field(self) -> str | None:
        return self.task.cfg.label_field if self.task is not None else None

    @property
    def labels(self) -> list[str]:
        labels = self.task.labels if self.task is not None else None
        return [str(v) for v in labels or [] if v is not None]

    def summary(self) -> dict[str, Any]:
        return {
            "eval_items": sum(self.eval_labels.values()) if self.eval_labels is not None else None,
            "eval_labels": dict(sorted(self.eval_labels.items())) if self.eval_labels is not None else None,
            "eval_confidences": len(self.eval_confidences) if self.eval_confidences is not None else None,
            "train_labels": dict(sorted(self.train_labels.items())) if self.train_labels is not None else None,
            "problems": self.problems,
        }


def recorded_task(recorded_config: dict[str, Any]) -> Task:
    """The task exactly as a release or run recorded it (schema inlined in its config)."""
    recorded = {k: v for k, v in recorded_config.items() if not k.startswith("_")}
    config = ProjectConfig.model_validate(recorded)
    if config.task.output_schema is None:
        raise ValueError("its recorded config has no inlined output schema")
    return Task(config.task, config.task.output_schema)


def task_reference(registry: Registry, release: Release) -> TaskReference:
    """Everything drift compares `release`'s traffic with that the registry holds; gaps are named."""
    return reference_of(registry, release.ref, release.config, release.eval_report_digest, release.dataset_version)


def reference_of(
    registry: Registry, subject: str, recorded_config: dict[str, Any], eval_report_digest: str, dataset_version: str
) -> TaskReference:
    """The references of a release, or of a run about to become one (its config, eval report and dataset)."""
    try:
        task: Task | None = recorded_task(recorded_config)
    except Exception as exc:
        return TaskReference(subject, None, problems={"task": f"cannot read its recorded config: {exc}"})
    assert task is not None
    reference = TaskReference(subject, task)
    report = _eval_report(registry, eval_report_digest)
    if report is None:
        reference.problems["eval"] = "its eval report is not in the store"
    else:
        labels: Counter[str] = Counter()
        confidences: list[float] = []
        for item in report.get("predictions", []):
            side = item.get("adapter") or {}
            if side.get("confidence") is not None:
                confidences.append(float(side["confidence"]))
            label = _answer_label(task, side.get("text"))
            if label is not None:
                labels[label] += 1
        if task.cfg.label_field is not None:
            reference.eval_labels = labels
        reference.eval_confidences = confidences
        mismatch = _confidence_mismatch(task, recorded_config, report)
        if not confidences:
            reference.problems["confidence"] = "its eval report records no confidences (evaluated before they were)"
        elif mismatch:
            # Comparing two different numbers would call drift on unchanged traffic: no reference rather.
            reference.eval_confidences = []
            reference.problems["confidence"] = mismatch
    try:
        dataset = registry.get_dataset(dataset_version)
        train = registry.store.path(dataset.digest) / "train.jsonl"
        with train.open(encoding="utf-8") as fh:
            counts = Counter(str(row["label"]) for row in map(json.loads, fh) if row.get("label") is not None)
        reference.train_labels = counts
    except Exception as exc:  # a release of a dataset this store does not hold
        reference.problems["train"] = f"no training split for {dataset_version}: {exc}"
    return reference


def _confidence_mismatch(task: Task, recorded_config: dict[str, Any], report: dict[str, Any]) -> str:
    """Why the eval's confidences are not the number serving records ('' when they are the same kind).

    With label scoring (serve.label_scoring) an answer's confidence is its label's probability; without
    it, the probability of its least likely token. The eval report says which one it measured
    (`decoding.label_scoring`; reports from before label scoring have no such key and decoded the label);
    the release's recorded config says how it is served.
    """
    from slmkit.models.labels import LabelField

    if LabelField.of(task) is None:  # no label to score: both are the least likely token's probability
        return ""
    decoding = report.get("decoding") or {}
    evaluated = bool(decoding.get("label_scoring", False))
    served = bool((recorded_config.get("serve") or {}).get("label_scoring", True))  # ServeConfig's default
    if evaluated == served:
        return ""
    kinds = {True: "its label's probability (label scoring)", False: "its least likely token's probability"}
    return (
        f"its eval measured each answer's confidence as {kinds[evaluated]} and serving records "
        f"{kinds[served]}: re-run `slmkit eval` and release again for a confidence reference"
    )


def _answer_label(task: Task, text: Any) -> str | None:
    """The label the server would have returned for this text: its own, or the refusal's if it is invalid."""
    label_field = task.cfg.label_field
    if label_field is None or not isinstance(text, str):
        return None
    parsed = task.parse(text)
    output = task.canonical(parsed.value) if parsed.valid else task.refusal_output
    value = output.get(label_field) if isinstance(output, dict) else None
    return None if value is None else str(value)


def _eval_report(registry: Registry, digest: str) -> dict[str, Any] | None:
    if not registry.store.exists(digest):
        return None
    try:
        data = json.loads(registry.store.path(digest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
