"""How an eval side decodes: label scoring, under the schema, or free; and the refusal for low confidence.

Eval, the rollback rehearsal and serving answer through these, so a recorded answer can be
produced again exactly and an offline number is the number production gets.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

from slmkit.models.generate import Generation, generate
from slmkit.task import Task

Mode = Literal["scored", "constrained", "free"]
MODES: tuple[Mode, ...] = ("scored", "constrained", "free")


def answer(
    model: Any,
    tokenizer: Any,
    task: Task,
    prompts: list[str],
    *,
    mode: Mode,
    constrained: bool,
    max_new_tokens: int,
    batch_size: int,
    logprobs: bool = True,
    schema: Any = None,
) -> list[Generation]:
    """Answers in `mode`: scored = the label by label scoring, the other fields decoded after it
    (under the schema when `constrained`); constrained / free = the whole answer decoded.

    `schema` replaces the task's schema for constrained decoding: one per prompt for a retrieval
    task (its citations only of that prompt's chunks).
    """
    schema = task.schema if schema is None else schema
    if mode == "scored":
        from slmkit.models.labels import answer_with_labels

        return answer_with_labels(
            model,
            tokenizer,
            task,
            prompts,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            constrained=constrained,
            logprobs=logprobs,
            schema=schema,
        )
    return generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        schema=schema if mode == "constrained" else None,
        logprobs=logprobs,
    )


def low_confidence(generation: Generation, threshold: float) -> bool:
    """The answer's label probability is under the refusal threshold (never without label scoring)."""
    return threshold > 0 and generation.label is not None and generation.label.probability < threshold


def refuse_low_confidence(task: Task, generations: list[Generation], threshold: float) -> list[bool]:
    """Replace, in place, each answer under `threshold` by the task's refusal; which ones were.

    Nothing changes for a task without a refusal output.
    """
    refusal = task.refusal_output
    refused = [refusal is not None and low_confidence(g, threshold) for g in generations]
    if refusal is not None:
        text = task.format_output(refusal)
        for i, replaced in enumerate(refused):
            if replaced:
                generations[i] = replace(generations[i], text=text)
    return refused
