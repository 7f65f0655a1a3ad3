"""Retrieved context for training rows (RAFT, taken further): rows that teach the adapter to read.

For each answerable row `data build` ranks the chunks the training groups may see and finds the
answer's chunk (the best-ranked one holding the `answer_field` text). Then, drawn per row:

- with probability `oracle_share`: the answer's chunk plus distractors (the best-ranked chunks
  without the answer), the answer citing it; of these, a `counterfactual_share` get the value
  changed in the chunk and in the answer alike (`alter.change_value`), so recall cannot give the
  right answer, reading can;
- with probability `entity_swap_share`: the same context with the question's name replaced by
  another name of the answer's section everywhere in it (one the context does not hold; when it
  holds them all, the sentences naming it are dropped instead), and the refusal as the answer;
- otherwise: distractors only, and the refusal as the answer.

A row whose answer is already the refusal gets the best-ranked chunks. Each context is shuffled
(`shuffle_context`) so position says nothing. A changed chunk carries `"altered": "value"` or
`"name"`: its text no longer is the document's at its span.

Only public documents and those in `retrieval.training_groups` are ranked, and names and values
come from those chunks and the row alone: a fact trained into the weights can come out for any
caller. Every draw is seeded by the row (same row and settings, same context in every build).
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from slmkit.config import RetrievalSettings
from slmkit.retrieval import alter
from slmkit.retrieval.chunking import Chunk
from slmkit.retrieval.context import context_records
from slmkit.retrieval.search import Hit, Retriever
from slmkit.task import Task

DEPTH = 20  # chunks ranked per training question to pick the answer's chunk and distractors from
EXAMPLE_CHARS = 240  # of a changed chunk, shown on the data card

ORACLE = "rows with the answer's chunk"
COUNTERFACTUAL = "rows with the answer's chunk, its value changed (counterfactual)"
SWAPPED = "rows with the answer's chunk under another name (answer: the refusal)"
DISTRACTORS = "rows with distractors only (answer: the refusal)"
REFUSAL_ROWS = "refusal rows"
NO_NUMBER = "counterfactual drawn, but the answer has no number to change"
SWAP_REPLACED = "name swaps: another name of the section stands in"
SWAP_DROPPED = "name swaps: every other name is in the context, the sentences naming it dropped"
SWAP_EMPTIED = "name swap drawn, but its chunks held nothing else (distractors only instead)"
NO_NAME = "name swap drawn, but the question names nothing its chunk holds (distractors only instead)"
NOT_IN_DOCUMENTS = "answerable rows whose answer is in no document (refusal)"
NO_ANSWER_TEXT = "answerable rows with no answer text"


class TrainingContexts:
    """Attaches a context to each training row of a data build; deterministic per row and seed.

    `scrub` (PII removal) runs on every chunk before it is part of a row or of an example.
    """

    def __init__(
        self,
        task: Task,
        retriever: Retriever,
        seed: int,
        scrub: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        assert task.cfg.retrieval is not None
        self.task = task
        self.settings: RetrievalSettings = task.cfg.retrieval
        self.retriever = retriever
        self.seed = seed
        self.scrub = scrub or (lambda chunk: chunk)
        self.groups = list(self.settings.training_groups)
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, dict[str, Any]] = {}
        self._section_names: dict[tuple[str, str], list[str]] = {}

    def attach(self, row: dict[str, Any]) -> dict[str, Any]:
        return self.attach_many([row])[0]

    def attach_many(self, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows with their `context` and outputs; their questions are embedded in one batch."""
        settings = self.settings
        vectors = self.retriever.embed_queries([row["input"] for row in rows])
        out = []
        for row, vector in zip(rows, vectors, strict=True):
            hits = self.retriever.search(
                row["input"], groups=self.groups, k=DEPTH, mode=settings.fusion,
                dense_weight=settings.dense_weight, query_vector=vector,
            )  # fmt: skip
            out.append(self._ground(row, hits))
        return out

    def _ground(self, row: dict[str, Any], hits: list[Hit]) -> dict[str, Any]:
        settings, task = self.settings, self.task
        rng = random.Random(int(hashlib.sha256(f"{self.seed}:{row['id']}:{row['input']}".encode()).hexdigest(), 16))
        # Both draws first, so changing one share never moves which rows the other picks.
        kind_draw, counterfactual_draw = rng.random(), rng.random()
        output = dict(row["output"])
        answer = self._answer_text(output)
        cited: str | None = None  # the chunk id the answer cites; None: the answer is the refusal
        example_chunk = ""  # the changed chunk, for the data card's example
        if task.is_refusal({**output, settings.citations_field: []}):
            context = context_records([h.chunk for h in hits[: settings.top_k]])
            kind = REFUSAL_ROWS
        else:
            oracle = self._oracle(hits, answer)
            holding = {h.chunk.id for h in hits if answer and _holds(h.chunk.text, answer)}
            holding |= {oracle.id} if oracle is not None else set()
            distractors = [h.chunk for h in hits if h.chunk.id not in holding]
            with_oracle = context_records([oracle, *distractors[: settings.top_k - 1]]) if oracle else []
            kind = DISTRACTORS
            if oracle is None:
                context = context_records(distractors[: settings.top_k])
            elif kind_draw < settings.oracle_share:
                context, cited, kind = with_oracle, oracle.id, ORACLE
                if counterfactual_draw < settings.counterfactual_share:
                    changed = self._counterfactual(row["input"], output, context, oracle, rng)
                    if changed is not None:
                        (context, output), kind, example_chunk = changed, COUNTERFACTUAL, oracle.id
            elif kind_draw < settings.oracle_share + settings.entity_swap_share:
                swapped = self._swap(row["input"], with_oracle, oracle, rng)
                if swapped is not None:  # the example: the first changed chunk (the answer's may be gone)
                    context, kind = swapped, SWAPPED
                    example_chunk = next(c["id"] for c in swapped if c.get("altered"))
                else:
                    context = context_records(distractors[: settings.top_k])
            else:
                context = context_records(distractors[: settings.top_k])
        self.counts[kind] += 1
        if settings.shuffle_context:
            rng.shuffle(context)
        context = [self.scrub({**c, "ref": f"d{n}"}) for n, c in enumerate(context, start=1)]
        if cited is None:
            output = dict(task.refusal_output or {})
        else:
            output[settings.citations_field] = [c["ref"] for c in context if c["id"] == cited]
        grounded = {**row, "output": task.canonical(output), "context": context}
        if kind in (COUNTERFACTUAL, SWAPPED) and kind not in self.examples:
            self.examples[kind] = _example(grounded, example_chunk, settings.answer_field)
        return grounded

    def _counterfactual(
        self, question: str, output: dict[str, Any], context: list[dict[str, Any]], oracle: Chunk, rng: random.Random
    ) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
        """(context, output) with the answer's value changed in its chunk and in the answer, or None."""
        field = self.settings.answer_field
        value = output.get(field) if field else None
        amount = alter.shift_amount(value, rng) if isinstance(value, str) else None
        if field is None or not isinstance(value, str) or amount is None:
            self.counts[NO_NUMBER] += 1
            return None
        text = alter.change_value(oracle.text, value, amount, alter.question_name(question, oracle.text))
        changed_output = {**output, field: alter.shift_numbers(value, amount)}
        if text is None or self.task.validate({**changed_output, self.settings.citations_field: []}):
            self.counts[NO_NUMBER] += 1  # the value is not written as in the answer, or no longer fits the schema
            return None
        changed = [{**c, "text": text, "altered": "value"} if c["id"] == oracle.id else c for c in context]
        return changed, changed_output

    def _swap(
        self, question: str, context: list[dict[str, Any]], oracle: Chunk, rng: random.Random
    ) -> list[dict[str, Any]] | None:
        """The context with the question's name replaced by another name of the answer's section that it does
        not hold, or, when it holds them all, without the sentences naming it; None if the question names
        nothing its chunk holds. Never a stand-in the context holds already: a context naming one thing
        twice, with two values, teaches the adapter to refuse what it should answer."""
        name = alter.question_name(question, oracle.text)
        if name is None:
            self.counts[NO_NAME] += 1
            return None
        lowered = name.lower()
        others = [
            n for n in self._names(oracle.doc_id, oracle.section)
            if lowered not in n.lower() and n.lower() not in lowered
            and not any(alter.find(c[key], n) for c in context for key in ("text", "heading"))
        ]  # fmt: skip
        other = rng.choice(others) if others else None
        swapped = []
        for c in context:
            if any(alter.find(c[key], name) for key in ("text", "heading")):
                if other is None:
                    heading = f"{c['heading']}\n{c['section']}"
                    c = {**c, "text": alter.drop_name(c["text"], name, heading), "altered": "name"}
                else:
                    fields = {key: alter.replace_name(c[key], name, other) for key in ("text", "heading", "section")}
                    c = {**c, **fields, "altered": "name"}
            if c["text"].strip():  # a chunk that only named it is gone
                swapped.append(c)
        if not any(c.get("altered") for c in swapped):
            self.counts[SWAP_EMPTIED] += 1
            return None
        self.counts[SWAP_DROPPED if other is None else SWAP_REPLACED] += 1
        return swapped

    def _names(self, doc_id: str, section: str) -> list[str]:
        """The names in the chunks of one section of a document the training groups may see."""
        key = (doc_id, section)
        if key not in self._section_names:
            store = self.retriever.store
            where, params = store.visible_filter(self.groups)
            with store.lock:
                texts = [r[0] for r in store.conn.execute(
                    f"SELECT text FROM chunks WHERE {where} AND doc_id = ? AND section = ? ORDER BY id",
                    [*params, doc_id, section],
                )]  # fmt: skip
            self._section_names[key] = list(dict.fromkeys(n for text in texts for n in alter.names(text)))
        return self._section_names[key]

    def _answer_text(self, output: dict[str, Any]) -> str:
        field = self.settings.answer_field
        value = output.get(field) if field else None
        return value if isinstance(value, str) else ""

    def _oracle(self, hits: list[Hit], answer: str) -> Chunk | None:
        """The best-ranked chunk holding the answer text (any visible chunk, if none of the top ones does)."""
        if not answer:
            if self.settings.answer_field is None and hits:
                return hits[0].chunk
            self.counts[NO_ANSWER_TEXT] += 1
            return None
        for hit in hits:
            if _holds(hit.chunk.text, answer):
                return hit.chunk
        store = self.retriever.store
        where, params = store.visible_filter(self.groups)
        with store.lock:
            ids = [r[0] for r in store.conn.execute(f"SELECT id, text FROM chunks WHERE {where} ORDER BY id", params)
                   if _holds(r[1], answer)]  # fmt: skip
        if ids:
            return store.chunk_rows(ids[:1])[ids[0]]
        self.counts[NOT_IN_DOCUMENTS] += 1
        return None

    def report(self) -> dict[str, Any]:
        """What report.json (and the data card) records: the settings, rows per kind, one example per change."""
        s = self.settings
        return {
            "top_k": s.top_k,
            "oracle_share": s.oracle_share,
            "counterfactual_share": s.counterfactual_share,
            "entity_swap_share": s.entity_swap_share,
            "shuffle_context": s.shuffle_context,
            "training_groups": list(self.groups),
            **dict(sorted(self.counts.items())),
            "examples": self.examples,
        }


def _holds(text: str, answer: str) -> bool:
    return bool(alter.find(text, answer))


def _example(row: dict[str, Any], chunk_id: str, field: str | None) -> dict[str, Any]:
    text = next(c["text"] for c in row["context"] if c["id"] == chunk_id)
    return {
        "question": row["input"],
        "answer": row["output"].get(field) if field else row["output"],
        "chunk": chunk_id,
        "text": text if len(text) <= EXAMPLE_CHARS else text[:EXAMPLE_CHARS].rstrip() + "...",
    }
