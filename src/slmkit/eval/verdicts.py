"""Review one item at a time: a release's review queue and a reviewer's verdict on each item.

The queue is what `slmkit review export` would write for the release (eval.review picks the
items from its eval report); the verdicts live in the registry, one append-only row per answer,
the newest per item current. `slmkit review answer` and the console's review page both call
`answer_item`; `slmkit review signoff` and the console's sign-off button both call
`slmkit.eval.signoff.sign_off`.

A verdict judges the answer the release gave:
- accept: the answer is right as it stands;
- correct: the answer is wrong, and here is the right one (checked against the task's output
  schema before anything is recorded; it may also differ from the gold answer when the gold
  is what was wrong);
- reject: the answer is wrong, with no correction given.
For the sign-off, accept counts as ok and correct and reject count as wrong.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from slmkit.config import ProjectConfig
from slmkit.errors import DataError, RegistryError
from slmkit.eval.review import ReviewItem, find_report, recorded_task, select_for_review
from slmkit.registry import Registry, Release, ReviewVerdict
from slmkit.registry.records import default_actor
from slmkit.task import Task

ANSWERS = ("accept", "correct", "reject")
AS_SIGNOFF = {"accept": "ok", "correct": "wrong", "reject": "wrong"}  # verdict -> review.csv's word


@dataclass(frozen=True)
class ReviewQueue:
    """A release's review items (most urgent first) and the current verdict on each answered one."""

    release: Release
    report_digest: str
    task: Task
    items: list[ReviewItem]
    verdicts: dict[str, ReviewVerdict]

    @property
    def unanswered(self) -> list[ReviewItem]:
        return [i for i in self.items if i.id not in self.verdicts]

    def item(self, item_id: str) -> ReviewItem:
        for candidate in self.items:
            if candidate.id == item_id:
                return candidate
        raise DataError(
            f"item {item_id!r} is not in the review queue of {self.release.ref} ({len(self.items)} items)",
            hint=f"`slmkit review queue {self.release.version}` lists the items that need a verdict",
        )

    def lines(self) -> list[str]:
        done = len(self.items) - len(self.unanswered)
        lines = [f"{self.release.ref}: {len(self.items)} items to review, {done} answered"]
        for item in self.items:
            current = self.verdicts.get(item.id)
            state = "-" if current is None else f"{current.verdict} by {current.created_by}"
            lines.append(f"  {item.id:<16}{', '.join(item.reasons):<34}{state}")
        return lines


def review_queue(config: ProjectConfig, registry: Registry, ref: str | None = None) -> ReviewQueue:
    """The review queue of a release (`3`, `v3`, an alias, `name@3`; default release.alias)."""
    source = find_report(config, registry, ref if ref is not None else config.release.alias)
    if source.release is None:
        raise RegistryError(
            f"{ref} is a training run, not a release: verdicts are recorded on releases",
            hint="release it with `slmkit release`, or review its items on paper with `slmkit review export`",
        )
    release = registry.resolve(source.release)
    task = recorded_task(config, registry, release.run_id)
    items = select_for_review(source.report, task, config.eval.review)
    return ReviewQueue(release, source.digest, task, items, registry.review_verdicts(release.name, release.version))


def answer_item(
    config: ProjectConfig,
    registry: Registry,
    ref: str | None,
    item_id: str,
    verdict: str,
    *,
    correction: Any = None,
    note: str = "",
    reviewer: str | None = None,
) -> ReviewVerdict:
    """Record a verdict on one item of a release's queue; a correction must pass the output schema.

    DataError (nothing recorded) when the item is not in the queue, the verdict is unknown, a
    correction is missing, given without `correct`, or breaks the schema (each problem named).
    """
    if verdict not in ANSWERS:
        raise DataError(f"unknown verdict {verdict!r}", hint=f"answer {', '.join(ANSWERS)}")
    queue = review_queue(config, registry, ref)
    queue.item(item_id)
    if verdict == "correct":
        if correction is None:
            raise DataError(f"item {item_id}: 'correct' needs the right answer", hint="give the corrected answer")
        problems = queue.task.validate(correction)
        if problems:
            raise DataError(
                f"item {item_id}: the corrected answer does not match the output schema: " + "; ".join(problems),
                hint="fix each field named above; nothing was recorded",
            )
        correction = queue.task.canonical(correction)
    elif correction is not None:
        raise DataError(f"item {item_id}: a corrected answer goes with 'correct', not {verdict!r}")
    return registry.record_verdict(
        queue.release.name,
        queue.release.version,
        item_id,
        verdict,
        correction=correction,
        note=note.strip(),
        report_digest=queue.report_digest,
        actor=reviewer or default_actor(),
    )


def parse_correction(text: str) -> Any:
    """A corrected answer written as JSON (the command line's form); DataError naming where it breaks."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"the corrected answer is not JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            hint='write it as the task answers, e.g. {"category": "billing", ...}',
        ) from None


# --- the correction as a form: one input per property of a flat object schema ------------


@dataclass(frozen=True)
class FormField:
    """One property of the output schema as a form input: a choice, a text box, or JSON."""

    name: str
    kind: str  # choice / text / number / json
    choices: tuple[Any, ...] = ()
    nullable: bool = False


def form_fields(task: Task) -> list[FormField]:
    """The output schema's properties as inputs, in the order the model writes them."""
    schema = task.schema
    props: Mapping[str, Any] = schema.get("properties", {}) if schema.get("type") == "object" else {}
    fields = []
    for name in task.fields:
        spec = props.get(name, {})
        types = spec.get("type", [])
        types = [types] if isinstance(types, str) else list(types)
        nullable = "null" in types or None in spec.get("enum", [])
        if "enum" in spec:
            fields.append(FormField(name, "choice", tuple(spec["enum"]), nullable))
        elif "boolean" in types and len([t for t in types if t != "null"]) == 1:
            fields.append(FormField(name, "choice", (True, False, *((None,) if nullable else ())), nullable))
        elif {"string"} >= {t for t in types if t != "null"} and types:
            fields.append(FormField(name, "text", nullable=nullable))
        elif {"number", "integer"} & set(types) and not {"string", "object", "array"} & set(types):
            fields.append(FormField(name, "number", nullable=nullable))
        else:
            fields.append(FormField(name, "json", nullable=nullable))
    return fields


def correction_from_form(task: Task, values: Mapping[str, str]) -> dict[str, Any]:
    """The answer a correction form describes (`values`: property -> submitted text).

    Choices are submitted as the JSON of the option; an empty text or number box is null where
    the schema allows it. DataError names every property whose input cannot be read; the
    schema itself is checked by `answer_item`.
    """
    answer: dict[str, Any] = {}
    problems = []
    for field in form_fields(task):
        raw = values.get(field.name, "")
        if field.kind == "text":
            answer[field.name] = None if raw.strip() == "" and field.nullable else raw.strip()
            continue
        if raw.strip() == "" and field.nullable:
            answer[field.name] = None
            continue
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            problems.append(f"{field.name}: {raw!r} is not a {'number' if field.kind == 'number' else 'JSON value'}")
            continue
        if field.kind == "choice" and value not in field.choices:
            problems.append(f"{field.name}: {raw!r} is not one of the choices")
            continue
        answer[field.name] = value
    if problems:
        raise DataError("the corrected answer cannot be read: " + "; ".join(problems), hint="fix the fields named")
    return answer
