"""Answers grounded on retrieval, measured: accuracy, citation precision and recall, refusal correctness.

A question set is JSONL, one question per line:

    {"question": "...", "answer": "18 months", "document": "docs/warranty.html", "kind": "stable"}
    {"question": "...", "answer": "not in the documents", "document": null, "kind": "absent"}

`kind` groups the accuracy ("fresh": the fact changed after training; "stable"; "absent": no
document holds the answer, so the refusal is right). `groups` (optional) is the caller.

`answer_questions` answers them with one model as serving would: with retrieval, the caller's
chunks go into the prompt and each answer decodes under its own citation refs (nothing relevant
retrieved: the refusal, without the model); without, the question alone. `score_answers` turns
the answers into the numbers of the three-way table.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmkit.errors import DataError
from slmkit.task import Task


@dataclass(frozen=True)
class Question:
    text: str
    answer: str
    document: str | None
    kind: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Answered:
    output: dict[str, Any] | None  # None: not valid JSON under the schema
    cited_documents: tuple[str, ...]  # the documents its citations resolve to
    retrieved: int


def read_questions(path: Path) -> list[Question]:
    questions = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            questions.append(
                Question(row["question"], row["answer"], row.get("document"), row.get("kind", "stable"),
                         tuple(row.get("groups", ())))
            )  # fmt: skip
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise DataError(
                f"{path}:{number}: not a question row ({type(exc).__name__}: {exc})",
                hint='write {"question": ..., "answer": ..., "document": ..., "kind": ...}',
            ) from None
    return questions


def answer_questions(
    model: Any,
    tokenizer: Any,
    task: Task,
    questions: Sequence[Question],
    *,
    retriever: Any = None,
    max_new_tokens: int = 64,
    batch_size: int = 8,
) -> list[Answered]:
    """One answer per question, greedy and under the schema, as the server gives it."""
    from slmkit.models.generate import generate
    from slmkit.retrieval.context import request_context

    settings = task.cfg.retrieval
    contexts: list[list[dict[str, Any]] | None] = [
        request_context(retriever, settings, q.text, q.groups)[0] if settings is not None else None for q in questions
    ]
    asked = [i for i, context in enumerate(contexts) if context != []]
    prompts = [task.prompt_text(tokenizer, task.model_input(questions[i].text, contexts[i])) for i in asked]
    outputs = generate(
        model,
        tokenizer,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        schema=[task.decoding_schema(contexts[i]) for i in asked],
    )
    answers = [Answered(task.refusal_output, (), 0) for _ in questions]  # nothing retrieved: refused
    for i, generation in zip(asked, outputs, strict=True):
        parsed = task.parse(generation.text)
        output = parsed.value if parsed.valid else None
        documents: tuple[str, ...] = ()
        context = contexts[i]
        if settings is not None and context is not None and output is not None:
            by_ref = {c["ref"]: c["document"] for c in context}
            documents = tuple(by_ref[r] for r in output.get(settings.citations_field, []) if r in by_ref)
        answers[i] = Answered(output, documents, len(context or ()))
    return answers


def score_answers(task: Task, questions: Sequence[Question], answers: Sequence[Answered]) -> dict[str, Any]:
    """accuracy (overall and per kind), citation precision / recall, refusal correctness, false refusals."""
    field = task.cfg.retrieval.answer_field if task.cfg.retrieval else None
    field = field or next(iter(task.fields))
    correct: dict[str, list[bool]] = {}
    cited = cited_right = answerable = recalled = 0
    absent_refused: list[bool] = []
    false_refusals: list[bool] = []
    for question, answered in zip(questions, answers, strict=True):
        refused = answered.output is not None and task.is_refusal({**answered.output, **_no_citations(task)})
        if question.kind == "absent":
            ok = refused
            absent_refused.append(refused)
        else:
            got = answered.output.get(field) if answered.output is not None else None
            ok = isinstance(got, str) and _norm(got) == _norm(question.answer)
            false_refusals.append(refused)
            answerable += 1
            recalled += question.document in answered.cited_documents
            cited += len(answered.cited_documents)
            cited_right += sum(1 for d in answered.cited_documents if d == question.document)
        correct.setdefault(question.kind, []).append(ok)
    every = [ok for oks in correct.values() for ok in oks]
    scores: dict[str, Any] = {"items": len(questions), "accuracy": _mean(every)}
    for kind, oks in sorted(correct.items()):
        scores[f"accuracy_{kind}"] = _mean(oks)
    has_citations = task.cfg.retrieval is not None
    scores["citation_precision"] = cited_right / cited if has_citations and cited else None
    scores["citation_recall"] = recalled / answerable if has_citations and answerable else None
    scores["refusal_when_absent"] = _mean(absent_refused)
    scores["false_refusals"] = _mean(false_refusals)
    return scores


def _no_citations(task: Task) -> dict[str, Any]:
    return {task.cfg.retrieval.citations_field: []} if task.cfg.retrieval else {}


def _mean(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def _norm(text: str) -> str:
    return " ".join(text.lower().strip(" .").split())
