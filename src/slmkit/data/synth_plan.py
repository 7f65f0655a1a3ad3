"""What `slmkit synth` asks the teacher: one request per synthetic row, in budget order.

Seeds are the rows of the dataset's train split (never validation or gold). Each seed-based
request keeps an answer that a person wrote: a paraphrase and a same-label request keep their
seed's answer, a near miss keeps its seed's answer while borrowing the wording of the most
similar seed of another label. An out-of-scope request gets the refusal rule's answer. A
document request asks for a request and its answer from one corpus chunk, and the answer must
then be found in that chunk.

The order is the budget's: labels with the fewest real rows first, one request per label in
turn, so a run cut short by `synth.max_calls` has spent its calls on the rare labels.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from slmkit.config import SynthConfig
from slmkit.data.dataset import Example
from slmkit.data.synth_teacher import TeacherRequest
from slmkit.task import Task

SEED_KINDS = ("paraphrase", "same_label", "near_miss")
NEAR_MISS_POOL = 200  # seeds of other labels compared with each seed when choosing its partner
PARTNERS = 3  # a seed's samples rotate over its nearest few partners


@dataclass(frozen=True)
class Planned:
    """One synthetic row to ask for: its kind, the answer it keeps (if any) and where that answer comes from."""

    kind: str
    label: str | None  # the label the row adds to (budget and card)
    seeds: tuple[str, ...]  # seed ids: the first one's answer is kept (near_miss: the second lends wording)
    output: dict[str, Any] | None  # the kept answer; None for document rows (the teacher writes it)
    keep: tuple[str, ...]  # values of the kept answer that the new request must contain
    escalates: bool  # whether the seed's (input, answer) escalates: a variant must agree
    chunk: dict[str, Any] | None  # the corpus chunk of a document row
    request: TeacherRequest


def label_name(label: Any) -> str | None:
    if label is None:
        return None
    return label if isinstance(label, str) else json.dumps(label)


def answer_of(task: Task, output: dict[str, Any]) -> dict[str, Any]:
    """An answer without its citations: a retrieval task's rows are cited when their context is attached."""
    if task.cfg.retrieval is None:
        return output
    return {k: v for k, v in output.items() if k != task.cfg.retrieval.citations_field}


def is_refusal(task: Task, output: dict[str, Any]) -> bool:
    """Whether an answer (citations or not) is the refusal rule's."""
    if task.cfg.retrieval is None:
        return task.is_refusal(output)
    return task.is_refusal({**output, task.cfg.retrieval.citations_field: []})


def label_fields(task: Task) -> set[str]:
    """Output fields whose schema lists their values (enum, const): labels, never copied from the input."""
    properties = task.schema.get("properties") or {}
    return {n for n, spec in properties.items() if isinstance(spec, dict) and {"enum", "const"} & set(spec)}


def free_values(task: Task, output: dict[str, Any]) -> list[str]:
    """The texts and numbers of an answer outside its label fields: what a request must contain."""
    labels = label_fields(task)
    found: list[str] = []
    for name, value in output.items():
        if name not in labels:
            found.extend(_leaves(value))
    return list(dict.fromkeys(found))


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, str | int | float):
        text = str(value).strip()
        if text:
            yield text
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)


class Prompts:
    """The messages of each kind of request, for one task."""

    def __init__(self, task: Task) -> None:
        self.task = task
        fields = task.cfg.input_fields
        self.fields = fields
        what = task.cfg.description.strip() or task.cfg.system_prompt.strip().split("\n")[0][:400]
        self.system = (
            f"You write realistic requests that users send to an assistant, to train it. The assistant's job: "
            f"{what} Follow the instruction exactly and reply with only the JSON object asked for."
        )
        self.input_schema = {
            "type": "object",
            "properties": {name: {"type": "string"} for name in fields},
            "required": list(fields),
            "additionalProperties": False,
        }
        self.shape = "{" + ", ".join(f'"{name}": "<...>"' for name in fields) + "}"
        answer_schema = dict(task.schema)
        if task.cfg.retrieval is not None:  # citations come with the context, at the end
            properties = task.schema.get("properties") or {}
            cited = task.cfg.retrieval.citations_field
            answer_schema["properties"] = {k: v for k, v in properties.items() if k != cited}
        self.document_schema = {
            "type": "object",
            "properties": {"input": self.input_schema, "output": answer_schema},
            "required": ["input", "output"],
            "additionalProperties": False,
        }

    def show(self, example: Example) -> str:
        if len(self.fields) == 1:
            return str(example.fields.get(self.fields[0], ""))
        return json.dumps({name: example.fields.get(name, "") for name in self.fields}, ensure_ascii=False)

    def answer(self, output: dict[str, Any]) -> str:
        return self.task.format_output(answer_of(self.task, output))

    def _keep(self, keep: Sequence[str]) -> str:
        if not keep:
            return ""
        return " Copy these values into it exactly as written: " + ", ".join(json.dumps(v) for v in keep) + "."

    def messages(self, user: str) -> list[dict[str, str]]:
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user}]

    def paraphrase(self, seed: Example, keep: Sequence[str]) -> str:
        return (
            "Rewrite the request below in different words, keeping its meaning."
            f"{self._keep(keep)}\n\nRequest:\n{self.show(seed)}\n\nReply with only a JSON object: {self.shape}"
        )

    def same_label(self, seed: Example, keep: Sequence[str]) -> str:
        return (
            f"Write a different request, about another situation and in other words, that gets the same answer: "
            f"{self.answer(seed.output)}.{self._keep(keep)}\n\nA request with that answer:\n{self.show(seed)}\n\n"
            f"Reply with only a JSON object: {self.shape}"
        )

    def near_miss(self, seed: Example, partner: Example, keep: Sequence[str]) -> str:
        return (
            f"Write a request whose answer is {self.answer(seed.output)}, like the first example, but that borrows "
            f"words and topic from the second example (answer {self.answer(partner.output)}), so that a careless "
            f"reader could mistake it. It must still clearly get the first answer.{self._keep(keep)}\n\n"
            f"First example:\n{self.show(seed)}\n\nSecond example:\n{self.show(partner)}\n\n"
            f"Reply with only a JSON object: {self.shape}"
        )

    def out_of_scope(self, examples: Sequence[Example]) -> str:
        refusal = self.task.cfg.refusal
        rule = refusal.when.strip() if refusal is not None and refusal.when else "it is outside the assistant's job."
        shown = "\n".join(f"- {self.show(e)}" for e in examples)
        return (
            f"Write a request that this assistant must refuse: {rule} Make it look like the requests below on the "
            f"surface, but about something the assistant does not handle.\n\nRequests it does handle:\n{shown}\n\n"
            f"Reply with only a JSON object: {self.shape}"
        )

    def document(self, chunk: dict[str, Any]) -> str:
        # The heading path the passage sits under ("Returns > Refunds"); the document's title when it has none.
        where = chunk.get("section") or chunk.get("title")
        title = f" ({where})" if where else ""
        return (
            "Read the passage. Write one request a user might send whose answer is in the passage, and that answer. "
            f"Copy every value of the answer exactly from the passage.\n\nPassage{title}:\n{chunk['text']}\n\n"
            f"The answer: {self.task.describe_output()}\n"
            f'Reply with only a JSON object: {{"input": {self.shape}, "output": <the answer>}}'
        )


def plan_requests(
    task: Task,
    synth: SynthConfig,
    seeds: Sequence[Example],
    chunks: Sequence[dict[str, Any]],
) -> list[Planned]:
    """Every request of this run, in budget order (rarest labels first, one per label in turn)."""
    prompts = Prompts(task)
    teacher = synth.teacher

    def request(kind: str, ident: str, sample: int, user: str, schema: dict[str, Any]) -> TeacherRequest:
        return TeacherRequest.make(
            model=teacher.model,
            messages=prompts.messages(user),
            schema=schema,
            temperature=teacher.temperature,
            max_tokens=teacher.max_tokens,
            seed=_sample_seed(synth.seed, kind, ident, sample),
            meta={"kind": kind, "ident": ident, "sample": sample},
        )

    real = Counter(label_name(s.label) for s in seeds)
    by_label: dict[str | None, list[Example]] = defaultdict(list)
    for seed in seeds:
        by_label[label_name(seed.label)].append(seed)
    kinds = [k for k in synth.kinds if k in SEED_KINDS]
    partners = _Partners(seeds, synth.seed) if "near_miss" in kinds else None
    groups: list[list[Planned]] = []
    for label in sorted(by_label, key=lambda name: (real[name], str(name))):
        group: list[Planned] = []
        for sample in range(synth.per_seed):
            for seed in by_label[label]:
                answer = answer_of(task, seed.output)
                # Values the seed's own input spells out; a normalized one (an order id written
                # without its prefix) cannot be asked of the variant word for word.
                keep = tuple(v for v in free_values(task, answer) if v.casefold() in seed.input.casefold())
                escalates = task.escalation_reason(seed.input, answer) is not None
                for kind in kinds:
                    ids: tuple[str, ...] = (seed.id,)
                    if kind == "paraphrase":
                        user = prompts.paraphrase(seed, keep)
                    elif kind == "same_label":
                        user = prompts.same_label(seed, keep)
                    else:
                        assert partners is not None
                        partner = partners.pick(seed, sample)
                        if partner is None:
                            continue  # one label only: nothing to be mistaken for
                        ids = (seed.id, partner.id)
                        user = prompts.near_miss(seed, partner, keep)
                    ask = request(kind, "|".join(ids), sample, user, prompts.input_schema)
                    group.append(Planned(kind, label, ids, answer, keep, escalates, None, ask))
        if synth.per_label is not None:
            group = group[: max(0, synth.per_label - real[label])]
        groups.append(group)
    if "out_of_scope" in synth.kinds and task.refusal_output is not None and seeds:
        refusal = answer_of(task, task.refusal_output)
        label = label_name(refusal.get(task.cfg.label_field)) if task.cfg.label_field else None
        rng = random.Random(f"{synth.seed}:out_of_scope")
        in_scope = [s for s in seeds if not is_refusal(task, s.output)] or list(seeds)
        group = []
        for number in range(synth.out_of_scope):
            shown = rng.sample(in_scope, min(2, len(in_scope)))
            ids = tuple(s.id for s in shown)
            ask = request("out_of_scope", str(number), 0, prompts.out_of_scope(shown), prompts.input_schema)
            group.append(Planned("out_of_scope", label, ids, refusal, (), False, None, ask))
        groups.append(group)
    if "document" in synth.kinds:
        groups.append(_document_requests(chunks, synth.per_document, prompts, request))
    return list(_round_robin(groups))


def _document_requests(
    chunks: Sequence[dict[str, Any]], per_document: int, prompts: Prompts, request: Any
) -> list[Planned]:
    by_document: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for chunk in chunks:
        by_document[str(chunk["id"]).rsplit("#", 1)[0]].append(chunk)
    planned = []
    for sample in range(per_document):
        for parts in by_document.values():
            chunk = parts[sample % len(parts)]
            ask = request(
                "document", str(chunk["id"]), sample // len(parts), prompts.document(chunk), prompts.document_schema
            )
            planned.append(Planned("document", None, (), None, (), False, chunk, ask))
    return planned


def _round_robin(groups: Sequence[Sequence[Planned]]) -> Iterator[Planned]:
    """One request from each group in turn (groups in priority order) until all are used."""
    longest = max((len(g) for g in groups), default=0)
    for i in range(longest):
        for group in groups:
            if i < len(group):
                yield group[i]


class _Partners:
    """For a near miss: the seeds of other labels whose words overlap a seed's most (Jaccard)."""

    def __init__(self, seeds: Sequence[Example], seed: int) -> None:
        self.seeds = list(seeds)
        self.words = [set(s.input.casefold().split()) for s in self.seeds]
        self.index = {s.id: i for i, s in enumerate(self.seeds)}
        self.rng_seed = seed
        self._nearest: dict[str, list[int]] = {}

    def pick(self, seed: Example, sample: int) -> Example | None:
        if seed.id not in self._nearest:
            me = self.index[seed.id]
            others = [i for i, s in enumerate(self.seeds) if label_name(s.label) != label_name(seed.label)]
            if len(others) > NEAR_MISS_POOL:
                others = random.Random(f"{self.rng_seed}:{seed.id}").sample(others, NEAR_MISS_POOL)
            mine = self.words[me]
            scored = sorted(others, key=lambda i: (-_jaccard(mine, self.words[i]), i))
            self._nearest[seed.id] = scored[:PARTNERS]
        nearest = self._nearest[seed.id]
        return self.seeds[nearest[sample % len(nearest)]] if nearest else None


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def _sample_seed(base: int, kind: str, ident: str, sample: int) -> int:
    """A request's sampling seed: fixed by the config's seed and what it asks, so a rerun asks the same."""
    digest = hashlib.sha256(f"{base}:{kind}:{ident}:{sample}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1
