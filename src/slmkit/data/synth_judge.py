"""An optional judge for synthetic rows: a model scores each row on a rubric, and rows under the threshold go.

The judge is reached like the teacher (any OpenAI-compatible endpoint, its own or the
teacher's) and its replies go to the same journal, so a resumed run does not pay for a verdict
twice. A reply that is not {"score": int, "reason": str} on the scale is unscorable, and an
unscorable row does not train: a row nobody vouched for is not checked. (`eval.judge` grades
answers against a reference; this one grades a training row on its own, so the prompt differs.)
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from slmkit.config import SynthConfig
from slmkit.data.synth_checks import Candidate, json_object
from slmkit.data.synth_teacher import Journal, Meter, Teacher, TeacherRequest, ask_all
from slmkit.task import Task

SYSTEM = (
    "You check training examples for an assistant. Reply with JSON only: "
    '{{"score": <integer from {low} to {high}>, "reason": "<one sentence>"}}.'
)


def judge_request(task: Task, synth: SynthConfig, model: str, candidate: Candidate) -> TeacherRequest:
    low, high = synth.judge.scale
    example = candidate.example
    assert example is not None
    parts = [
        f"Rubric:\n{synth.judge.rubric}",
        f"The assistant's instructions:\n{task.system_message()}",
        f"Request:\n{example.input}",
        f"Answer:\n{task.format_output(example.output)}",
    ]
    if candidate.planned.kind == "out_of_scope":
        parts.append("This request is meant to be out of scope, so the right answer is the refusal above.")
    if candidate.planned.chunk is not None:
        parts.append(f"The answer must come from this passage:\n{candidate.planned.chunk['text']}")
    schema = {
        "type": "object",
        "properties": {"score": {"type": "integer", "minimum": low, "maximum": high}, "reason": {"type": "string"}},
        "required": ["score", "reason"],
        "additionalProperties": False,
    }
    messages = [
        {"role": "system", "content": SYSTEM.format(low=low, high=high)},
        {"role": "user", "content": "\n\n".join(parts)},
    ]
    return TeacherRequest.make(
        model=model, messages=messages, schema=schema, temperature=0.0, max_tokens=128, seed=0, meta={"kind": "judge"}
    )


def judge_rows(
    task: Task,
    synth: SynthConfig,
    judge: Teacher,
    journal: Journal,
    candidates: Sequence[Candidate],
    *,
    budget: int,
    meter: Meter,
) -> int:
    """Score the alive candidates; reject those under the threshold, unscorable, or past the budget.

    Returns the number of new judge calls made.
    """
    alive = [c for c in candidates if c.alive]
    requests = [judge_request(task, synth, judge.model, c) for c in alive]
    replies, made = ask_all(judge, journal, requests, concurrency=synth.teacher.concurrency, budget=budget, meter=meter)
    for candidate, request in zip(alive, requests, strict=True):
        reply = replies.get(request.key)
        if reply is None:
            candidate.reject("budget", "not judged: synth.max_calls was reached before its judge call")
            continue
        if reply.error is not None:
            candidate.reject("judge", f"the judge call failed: {reply.error}")
            continue
        score, reason = read_verdict(reply.text or "", synth.judge.scale)
        if score is None:
            candidate.reject("judge", f"unscorable: {reason}")
            continue
        candidate.judge = {"score": score, "reason": reason, "model": judge.model, "prompt_sha256": request.key}
        if score < synth.judge.threshold:
            candidate.reject("judge", f"judge score {score} < synth.judge.threshold {synth.judge.threshold}: {reason}")
    return made


def read_verdict(text: str, scale: tuple[int, int]) -> tuple[int | None, str]:
    """(score, reason) from a judge reply, or (None, why it cannot be scored)."""
    value: Any = json_object(text)
    if value is None:
        return None, f"not a JSON object: {json.dumps(text[:120])}"
    score, reason = value.get("score"), value.get("reason")
    if isinstance(score, bool) or not isinstance(score, int) or not isinstance(reason, str):
        return None, f"needs an integer score and a string reason: {json.dumps(text[:120])}"
    if not scale[0] <= score <= scale[1]:
        return None, f"score {score} is off the scale {scale[0]}-{scale[1]}"
    return score, reason
