"""The guard: no structured answer leaves the server unless it parses and fits the schema.

A pure function over the task and the texts the model wrote, in attempt order; the engine
decides when to regenerate, the guard decides what may be returned.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slmkit.task import Task


@dataclass(frozen=True)
class GuardResult:
    output: dict[str, Any] | None  # the answer returned: a valid one, the refusal, or None (nothing valid)
    content: str | None  # its exact text: task.format_output(output)
    chosen: int | None  # index of the attempt returned; None when the refusal output stands in
    valid_first: bool  # the first attempt was valid as generated
    replaced: bool  # no attempt was valid, so the guard answered for the model
    refused: bool  # the answer is the task's refusal output (written by the model or the guard)
    attempts: int
    reason: str | None  # why the first attempt was rejected; None when it was valid


# An extra check an answer must pass (e.g. a retrieval task's citations): the problem, or None.
Check = Callable[[Any], str | None]


def acceptable(task: Task, text: str, check: Check | None = None) -> bool:
    """Whether this text would pass the guard as it is (stop regenerating)."""
    parsed = task.parse(text)
    return parsed.valid and (check is None or check(parsed.value) is None)


def judge(task: Task, attempts: Sequence[str], check: Check | None = None) -> GuardResult:
    """The first attempt that parses and validates; else the task's refusal output; else None.

    The content is always re-serialised from the parsed value, so a fenced or padded answer
    comes back as the exact canonical JSON the model was trained to write.
    """
    reason = None
    for i, text in enumerate(attempts):
        parsed = task.parse(text)
        problem = check(parsed.value) if parsed.valid and check is not None else None
        if parsed.valid and problem is None:
            output = task.canonical(parsed.value)
            return GuardResult(
                output=output,
                content=task.format_output(output),
                chosen=i,
                valid_first=i == 0,
                replaced=False,
                refused=task.is_refusal(output),
                attempts=len(attempts),
                reason=reason,
            )
        if reason is None:
            reason = problem or "; ".join(parsed.errors[:3])
    refusal = task.refusal_output
    return GuardResult(
        output=refusal,
        content=task.format_output(refusal) if refusal is not None else None,
        chosen=None,
        valid_first=False,
        replaced=refusal is not None,
        refused=refusal is not None,
        attempts=len(attempts),
        reason=reason,
    )
