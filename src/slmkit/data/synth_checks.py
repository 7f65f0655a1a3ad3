"""Nothing unchecked trains: each teacher reply becomes a checked synthetic row, or a reject with its reason.

Per row, in the order a person would fix them: the teacher answered; the reply is the JSON asked
for; the row passes the data build's own validation (input fields, output schema, empty, too
long: `validate.check_record`), personal data is replaced as in the build, and its prompt +
answer fit the token limit; the task's rules hold (a variant escalates exactly when its seed
did; a document row is not a refusal); the answer is grounded (the values kept from the seed
appear in the new request; a document row's values appear in its passage, with their spans).
Duplicates and copies of gold rows are decided on the whole batch (`synth_dedup`), the judge
scores what is left (`synth_judge`), and the real-row floor is applied last.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from slmkit.config import ProjectConfig, SourceConfig
from slmkit.data.clean import Cleaner
from slmkit.data.dataset import Example
from slmkit.data.ingest import RawRow
from slmkit.data.rows import REJECT_KINDS, Reject
from slmkit.data.synth_plan import Planned, free_values, is_refusal
from slmkit.data.synth_teacher import Reply, Teacher
from slmkit.data.validate import check_record
from slmkit.task import Task

SYNTH_REJECT_KINDS: dict[str, str] = {
    "teacher": "the teacher call failed in transport (nothing was journaled: the next run asks again)",
    "unparseable": "the teacher's reply is not the JSON object asked for, or was cut off at max_tokens",
    **{
        kind: REJECT_KINDS[kind]
        for kind in ("missing_field", "field_type", "output_json", "schema", "empty", "normalize", "too_long")
    },
    "pii_schema": REJECT_KINDS["pii_schema"],
    "rule": "breaks the task's rules: escalates where its seed did not (or the reverse), or refuses in a document row",
    "ungrounded": "a value of the answer is missing from the new request (kept from its seed) or from its passage",
    "duplicate": "the same input as a real row or an earlier synthetic row",
    "near_duplicate": "nearly the same input (MinHash) as a real row or an earlier synthetic row",
    "semantic_duplicate": "the same meaning (MiniLM) as a real row or an earlier synthetic row",
    "conflict": "the same or nearly the same input as another row with a different answer",
    "gold_leak": "an exact, near or semantic copy of a gold row: decontaminated, so the gold set stays unseen",
    "judge": "the judge scored it under synth.judge.threshold, or could not score it",
    "budget": "not judged because synth.max_calls was reached; run again (its teacher reply is journaled)",
    "real_share": "past the floor for real rows in training (synth.min_real_share); common labels' rows go first",
}

# How a synthetic row reads for `check_record`: its fields and the kept answer under "output".
_SOURCE = SourceConfig(path="synthetic", output_field="output")
_FENCE = re.compile(r"^```[a-zA-Z]*\s*(.*?)\s*```$", re.DOTALL)


@dataclass
class Candidate:
    """A teacher reply on its way to being a synthetic training row."""

    planned: Planned
    reply: Reply
    example: Example | None = None
    key: str = ""  # dedup key (normalized input)
    spans: list[dict[str, Any]] = field(default_factory=list)  # where a document row's values are in its chunk
    judge: dict[str, Any] | None = None
    verdict: tuple[str, str] | None = None  # (kind, reason) once rejected
    order: int = 0  # position in the plan

    @property
    def alive(self) -> bool:
        return self.verdict is None

    def reject(self, kind: str, reason: str) -> None:
        if kind not in SYNTH_REJECT_KINDS:
            raise ValueError(f"slmkit bug: unknown synthetic reject kind {kind!r}")
        if self.verdict is None:
            self.verdict = (kind, reason)

    @property
    def row_id(self) -> str:
        return f"synth-{self.planned.request.key[:12]}"

    @property
    def source(self) -> str:
        planned = self.planned
        if planned.chunk is not None:
            return f"synth:document:{planned.chunk['id']}"
        return f"synth:{planned.kind}:{planned.seeds[0] if planned.seeds else ''}"

    def provenance(self, teacher: Teacher) -> dict[str, Any]:
        planned, request = self.planned, self.planned.request
        record: dict[str, Any] = {
            "kind": planned.kind,
            "seeds": list(planned.seeds),
            "teacher": {"model": request.model, "temperature": request.temperature, "seed": request.seed},
            "prompt_sha256": request.key,
        }
        if planned.chunk is not None:
            chunk = planned.chunk
            record["document"] = {
                "chunk": chunk["id"],
                "source": chunk["source"],
                "chunk_sha256": chunk_hash(chunk),
                "spans": self.spans,
            }
        if self.judge is not None:
            record["judge"] = self.judge
        return record


def chunk_hash(chunk: dict[str, Any]) -> str:
    import hashlib

    return hashlib.sha256(chunk["text"].encode()).hexdigest()


def check_rows(config: ProjectConfig, task: Task, cleaner: Cleaner, candidates: Sequence[Candidate]) -> None:
    """The per-row checks, in order; a failing candidate gets its verdict and stops there."""
    passed: list[Candidate] = []
    for candidate in candidates:
        _check_one(config, task, cleaner, candidate)
        if candidate.alive:
            passed.append(candidate)
    if not passed:
        return
    examples = [c.example for c in passed if c.example is not None]
    for candidate, n_tokens in zip(passed, cleaner.count_tokens(examples), strict=True):
        problem = cleaner.token_problem(n_tokens)
        if problem:
            candidate.reject("too_long", problem)


def _check_one(config: ProjectConfig, task: Task, cleaner: Cleaner, candidate: Candidate) -> None:
    planned, reply = candidate.planned, candidate.reply
    if reply.error is not None:
        candidate.reject("teacher", reply.error)
        return
    text = reply.text or ""
    if reply.finish_reason == "length":
        candidate.reject("unparseable", f"the reply was cut off at synth.teacher.max_tokens: {_clip(text)}")
        return
    record, problem = read_reply(task, planned, text)
    if record is None:
        candidate.reject("unparseable", problem)
        return
    checked = check_record(
        task, RawRow(candidate.source, record), _SOURCE, config.data.max_input_chars, config.data.normalize
    )
    if isinstance(checked, Reject):
        candidate.reject(checked.kind, checked.reason)
        return
    scrubbed = cleaner.scrub(checked)
    if isinstance(scrubbed, Reject):
        candidate.reject(scrubbed.kind, scrubbed.reason)
        return
    example = scrubbed.example
    candidate.example = Example(
        candidate.row_id, candidate.source, example.input, example.fields, example.output, example.label
    )
    candidate.key = scrubbed.key
    broken = rule_problem(task, planned, example)
    if broken:
        candidate.reject("rule", broken)
        return
    spans, ungrounded = grounding(task, planned, example)
    if ungrounded:
        candidate.reject("ungrounded", ungrounded)
        return
    candidate.spans = spans


def read_reply(task: Task, planned: Planned, text: str) -> tuple[dict[str, Any] | None, str]:
    """The row a reply describes, as a source record ({input fields..., "output": ...}), or why not."""
    value = json_object(text)
    if value is None:
        return None, f"not a JSON object: {_clip(text)}"
    fields = task.cfg.input_fields
    if planned.kind == "document":
        given, output = value.get("input"), value.get("output")
        if isinstance(given, str) and len(fields) == 1:
            given = {fields[0]: given}
        if not isinstance(given, dict) or not isinstance(output, dict):
            return None, f'needs {{"input": {{{", ".join(fields)}}}, "output": {{...}}}}: {_clip(text)}'
        record = {name: given.get(name) for name in fields if name in given}
        return {**record, "output": output}, ""
    missing = [name for name in fields if name not in value]
    if missing:
        return None, f"the reply lacks {', '.join(missing)}: {_clip(text)}"
    return {**{name: value[name] for name in fields}, "output": planned.output}, ""


def rule_problem(task: Task, planned: Planned, example: Example) -> str | None:
    """The task's refusal and escalation rules, as they apply to a synthetic row."""
    if planned.kind == "document" and is_refusal(task, example.output):
        return "a document row must answer from its passage, not refuse"
    reason = task.escalation_reason(example.input, example.output)
    if reason is not None and not planned.escalates:
        whose = "its seed does not" if planned.seeds and planned.kind != "out_of_scope" else "no person labelled it so"
        return f"the new row escalates ({reason}) but {whose}: synthetic rows may not invent escalations"
    if reason is None and planned.escalates:
        return "its seed escalates but the new row does not: the variant lost what made it go to a human"
    return None


def grounding(task: Task, planned: Planned, example: Example) -> tuple[list[dict[str, Any]], str | None]:
    """Spans of a document row's values in its chunk; for other rows, whether the kept values are in the request."""
    if planned.chunk is None:
        text = example.input.casefold()
        for value in planned.keep:
            if value.casefold() not in text:
                return [], f"the seed's value {value!r}, kept in the answer, is not in the new request"
        return [], None
    chunk_text = planned.chunk["text"]
    folded = chunk_text.casefold()
    values = free_values(task, example.output)
    if not values:
        return [], "the answer has no value that could be found in the passage (only labels or nulls)"
    spans = []
    for value in values:
        start = folded.find(value.casefold())
        if start < 0:
            return [], f"the answer's value {value!r} is not in the passage {planned.chunk['id']}"
        spans.append({"value": value, "start": start, "end": start + len(value)})
    return spans, None


def json_object(text: str) -> dict[str, Any] | None:
    """The JSON object in a reply: code fences and prose around it tolerated."""
    body = text.strip()
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1)
    start = body.find("{")
    if start < 0:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(body[start:])
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


def _clip(text: str, limit: int = 120) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
