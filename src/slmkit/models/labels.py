"""Label scoring: a label field's value is chosen by scoring every allowed value, not by decoding it.

For an enum field, each allowed value is written out as the answer writes it (json.dumps layout,
then what closes the value: `,`, or `}` and the end-of-turn token) and its tokens are scored given
the prompt. The value with the highest total log-probability is the answer; the softmax over the
candidates' totals is its probability, the answer's confidence. Unlike greedy decoding, which
commits to the first token of a label before seeing the rest, this compares whole labels
(`transaction_charged_twice` against `extra_charge_on_statement`), and it can never write a
label outside the enum.

All candidates of a prompt are scored in one forward pass. Their tokens form a trie (values that
share leading tokens share those positions) packed after the prompt; a 4D attention mask lets each
trie position see the prompt and its own ancestors only, with positions counted as if it followed
the prompt alone. The system prompt's keys/values come from the shared prefix cache, as in
generation. The vocabulary projection runs only where a candidate token is predicted.

Fields other than the label are decoded as before (under the schema when it can be enforced),
continuing after the chosen label: see `answer_with_labels`.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from slmkit.models.generate import Generation, SharedPrefix, cache_argument, common_prefix, generate, stop_token_ids
from slmkit.task import Task

TOP_ALTERNATIVES = 3  # labels kept with each answer: the chosen one and its nearest rivals


@dataclass(frozen=True)
class LabelField:
    """Where the label field sits in an answer, and its allowed values."""

    name: str
    values: tuple[Any, ...]
    position: int  # among the schema's properties (the answer's key order)
    fields: int  # properties in the schema

    @classmethod
    def of(cls, task: Task) -> LabelField | None:
        """The task's label field, when it has one with an enum of at least two values."""
        name = task.cfg.label_field
        spec = task.schema.get("properties", {}).get(name) if name else None
        if not name or not isinstance(spec, dict) or len(spec.get("enum") or []) < 2:
            return None
        return cls(name, tuple(spec["enum"]), task.fields.index(name), len(task.fields))

    @property
    def ends_answer(self) -> bool:
        return self.position == self.fields - 1

    def opening(self) -> str:
        """The answer text before the value when the label is the first field: `{"intent": `."""
        return "{" + json.dumps(self.name, ensure_ascii=False) + ": "

    def before_in(self, answer: str) -> str | None:
        """The text of a decoded answer (canonical layout) before the label's value, or None if absent."""
        key = json.dumps(self.name, ensure_ascii=False) + ": "
        at = answer.find(key)
        return answer[: at + len(key)] if at >= 0 else None

    def written(self, value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)

    def closing(self) -> str:
        return "}" if self.ends_answer else ","


@dataclass(frozen=True)
class LabelChoice:
    """The chosen value, its probability among the allowed values, and the nearest alternatives."""

    value: Any
    probability: float
    alternatives: tuple[tuple[Any, float], ...]  # (value, probability), most likely first, the chosen one included


def score_candidates(
    model: Any,
    contexts: Sequence[Sequence[int]],
    candidates: Sequence[Sequence[Sequence[int]]],
    *,
    pad_id: int,
    prefix: SharedPrefix | None = None,
    batch_size: int = 16,
) -> tuple[list[list[float]], list[float]]:
    """For each context, the summed log-probability of each of its candidate continuations, and
    the wall time of the batch it was scored in.

    `contexts[r]` is the full token list a row ends with (prompt, then the answer text every
    candidate shares); `candidates[r]` its continuations. `prefix`, when every context starts
    with its ids, supplies the keys/values of that shared start.
    """
    import torch

    if prefix is not None and not prefix.fits(contexts):
        prefix = None
    results: list[list[float]] = []
    seconds: list[float] = []
    for start in range(0, len(contexts), batch_size):
        rows = range(start, min(start + batch_size, len(contexts)))
        began = time.perf_counter()
        with torch.inference_mode():
            results.extend(
                _score_batch(model, [contexts[r] for r in rows], [candidates[r] for r in rows], pad_id, prefix)
            )
        seconds.extend([time.perf_counter() - began] * len(rows))
    return results, seconds


@dataclass(frozen=True)
class _Trie:
    tokens: list[int]
    parents: list[int]  # -1: follows the context directly
    depths: list[int]
    paths: list[list[int]]  # per candidate, its nodes in order

    @classmethod
    def build(cls, tails: Sequence[Sequence[int]]) -> _Trie:
        index: dict[tuple[int, int], int] = {}
        tokens: list[int] = []
        parents: list[int] = []
        depths: list[int] = []
        paths = []
        for tail in tails:
            parent, path = -1, []
            for depth, token in enumerate(tail):
                key = (parent, int(token))
                if key not in index:
                    index[key] = len(tokens)
                    tokens.append(int(token))
                    parents.append(parent)
                    depths.append(depth)
                parent = index[key]
                path.append(parent)
            paths.append(path)
        return cls(tokens, parents, depths, paths)


def _score_batch(
    model: Any,
    contexts: list[Sequence[int]],
    candidates: list[Sequence[Sequence[int]]],
    pad_id: int,
    prefix: SharedPrefix | None,
) -> list[list[float]]:
    """One forward pass: per row [left padding][context after the prefix][trie][right padding]."""
    import torch

    decoder, head = causal_lm_parts(model)
    device = next(model.parameters()).device
    shared = len(prefix.ids) if prefix is not None else 0
    tries = [_Trie.build(c) for c in candidates]
    rests = [list(c[shared:]) for c in contexts]
    width = max(len(r) for r in rests)
    nodes = max(len(t.tokens) for t in tries)
    length = width + nodes
    input_ids = torch.full((len(rests), length), pad_id, dtype=torch.long)
    positions = torch.zeros((len(rests), length), dtype=torch.long)
    allowed = torch.zeros((len(rests), length, shared + length), dtype=torch.bool)
    allowed[:, :, :shared] = True  # everyone sees the shared prefix
    for r, (rest, trie) in enumerate(zip(rests, tries, strict=True)):
        begin = width - len(rest)
        input_ids[r, begin:width] = torch.tensor(rest, dtype=torch.long)
        positions[r, begin:width] = torch.arange(shared, shared + len(rest))
        allowed[r, begin:width, shared + begin : shared + width] = torch.ones(len(rest), len(rest)).tril().bool()
        count = len(trie.tokens)
        input_ids[r, width : width + count] = torch.tensor(trie.tokens, dtype=torch.long)
        positions[r, width : width + count] = shared + len(rest) + torch.tensor(trie.depths, dtype=torch.long)
        allowed[r, width : width + count, shared + begin : shared + width] = True  # the whole context
        ancestry = torch.zeros((count, count), dtype=torch.bool)
        for k, parent in enumerate(trie.parents):  # parents come before children: one pass
            if parent >= 0:
                ancestry[k] = ancestry[parent]
            ancestry[k, k] = True
        allowed[r, width : width + count, shared + width : shared + width + count] = ancestry
        for q in [*range(begin), *range(width + count, length)]:  # padding sees itself (no empty softmax row)
            allowed[r, q, shared + q] = True
    dtype = next(decoder.parameters()).dtype
    mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]
    extra: dict[str, Any] = {"use_cache": False}
    if prefix is not None:
        cache = copy.deepcopy(prefix.cache)
        cache.batch_repeat_interleave(len(rests))
        extra = {cache_argument(decoder): cache, "use_cache": True}
    hidden = decoder(
        input_ids=input_ids.to(device), attention_mask=mask.to(device), position_ids=positions.to(device), **extra
    ).last_hidden_state
    softcap = getattr(getattr(model, "config", None), "final_logit_softcapping", None)
    scores: list[list[float]] = []
    for r, trie in enumerate(tries):
        # The state each trie token is predicted from: the context's last position, or its parent's.
        sources = torch.tensor([width - 1 if p < 0 else width + p for p in trie.parents], device=device)
        logits = head(hidden[r, sources]).float()
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        chosen = torch.log_softmax(logits, dim=-1).gather(1, torch.tensor(trie.tokens, device=device)[:, None])
        token_lp: list[float] = chosen.squeeze(1).tolist()
        scores.append([sum((token_lp[k] for k in path), 0.0) for path in trie.paths])
    return scores


def causal_lm_parts(model: Any) -> tuple[Any, Any]:
    """(the decoder, the vocabulary projection) inside a causal LM, under a PEFT wrapper or not."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not (hasattr(inner, "lm_head") and hasattr(inner, "model")):
        raise TypeError(f"cannot find the decoder and lm_head inside {type(model).__name__}")
    return inner.model, inner.lm_head


def choose_labels(
    model: Any,
    tokenizer: Any,
    field: LabelField,
    prompts: Sequence[str],
    befores: Sequence[str],
    *,
    prefix: SharedPrefix | None = None,
    batch_size: int = 16,
    end_of_turn: int | None = None,
) -> tuple[list[LabelChoice], list[float]]:
    """The label for each rendered prompt, its answer so far being `befores[i]` (up to the value),
    and the wall time of the batch each was scored in. `end_of_turn`: the token the chat template
    closes an answer with (default: the first stop token)."""
    stop = end_of_turn if end_of_turn is not None else stop_token_ids(model, tokenizer)[0]
    tokenized: dict[str, tuple[list[int], list[list[int]]]] = {}

    def split(before: str) -> tuple[list[int], list[list[int]]]:
        """(tokens every candidate answer starts with, each candidate's own tokens after them)."""
        if before not in tokenized:
            full = [
                tokenizer(before + field.written(v) + field.closing(), add_special_tokens=False)["input_ids"]
                + ([stop] if field.ends_answer else [])
                for v in field.values
            ]
            shared = common_prefix(full)
            tokenized[before] = (shared, [ids[len(shared) :] for ids in full])
        return tokenized[before]

    prompt_ids = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    contexts, candidates = [], []
    for ids, before in zip(prompt_ids, befores, strict=True):
        shared, tails = split(before)
        contexts.append(ids + shared)
        candidates.append(tails)
    if prefix is None and len(contexts) > 1:
        prefix = SharedPrefix.maybe(model, common_prefix(contexts))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop
    order = sorted(range(len(contexts)), key=lambda i: len(contexts[i]))  # little padding per batch
    totals, times = score_candidates(
        model,
        [contexts[i] for i in order],
        [candidates[i] for i in order],
        pad_id=pad_id,
        prefix=prefix,
        batch_size=batch_size,
    )
    choices: list[Any] = [None] * len(contexts)
    seconds = [0.0] * len(contexts)
    for i, total, took in zip(order, totals, times, strict=True):
        choices[i], seconds[i] = _choice(field.values, total), took
    return choices, seconds


def end_of_turn_token(task: Task, tokenizer: Any, field: LabelField) -> int | None:
    """The first token the chat template writes after an answer (`<|im_end|>`, `<end_of_turn>`): what a
    trained model predicts once the answer is complete. None when the template does not say."""
    answer = task.format_output({field.name: field.values[0]})
    _, completion = task.training_texts(tokenizer, "x", {field.name: field.values[0]})
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    if len(completion_ids) > len(answer_ids) and completion_ids[: len(answer_ids)] == answer_ids:
        return int(completion_ids[len(answer_ids)])
    return None


def _choice(values: Sequence[Any], totals: Sequence[float]) -> LabelChoice:
    peak = max(totals)
    weights = [math.exp(t - peak) for t in totals]
    norm = sum(weights)
    ranked = sorted(range(len(values)), key=lambda k: -totals[k])
    return LabelChoice(
        values[ranked[0]],
        weights[ranked[0]] / norm,
        tuple((values[k], round(weights[k] / norm, 6)) for k in ranked[:TOP_ALTERNATIVES]),
    )


def answer_with_labels(
    model: Any,
    tokenizer: Any,
    task: Task,
    prompts: list[str],
    *,
    max_new_tokens: int,
    batch_size: int = 16,
    prefix: SharedPrefix | None = None,
    constrained: bool = True,
    logprobs: bool = False,
    schema: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
    stop: Callable[[int], bool] | None = None,
) -> list[Generation]:
    """Answers whose label field is chosen by label scoring and whose other fields are decoded.

    Label first in the answer (the usual layout): the label is scored right after `{"label": `,
    then the rest of the answer is decoded after it (under the schema when `constrained`).
    Label elsewhere: the answer is decoded, the label re-scored given the fields before it, and
    the rest decoded again after the chosen label when it differs from the decoded one. Each
    Generation carries its LabelChoice in `label`. `schema` (default the task's; one per prompt
    allowed) constrains the decoded fields. `stop(i)` ends prompt i's decoding early (see `generate`).
    """
    field = LabelField.of(task)
    if field is None:
        raise ValueError("the task has no label field with an enum to score")
    schemas = (task.schema if schema is None else schema) if constrained else None

    def schemas_of(rows: Sequence[int]) -> Any:
        return schemas if schemas is None or isinstance(schemas, dict) else [schemas[i] for i in rows]

    if field.position == 0:
        decoded: list[Generation | None] = [None] * len(prompts)
        befores = [field.opening()] * len(prompts)
    else:
        first = generate(
            model,
            tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            batch_size=batch_size,
            prefix=prefix,
            schema=schemas,
            logprobs=logprobs,
            stop=stop,
        )
        decoded = list(first)
        befores = [field.before_in(g.text) or field.opening() for g in first]
    end = end_of_turn_token(task, tokenizer, field)
    choices, seconds = choose_labels(
        model, tokenizer, field, prompts, befores, prefix=prefix, batch_size=batch_size, end_of_turn=end
    )
    scored_at = time.perf_counter()  # every token of a scored label exists from here on
    if decoded[0] is not None:
        seconds = [s + g.seconds for s, g in zip(seconds, decoded, strict=True) if g is not None]

    results: list[Generation | None] = [None] * len(prompts)
    redo: list[int] = []
    for i, (choice, before) in enumerate(zip(choices, befores, strict=True)):
        text = before + field.written(choice.value)
        earlier = decoded[i]
        if field.ends_answer:
            answer = text + "}"
            tokens = len(tokenizer(answer, add_special_tokens=False)["input_ids"]) + 1  # + the stop token
            prompt_tokens = len(tokenizer(prompts[i], add_special_tokens=False)["input_ids"])
            results[i] = Generation(
                answer, prompt_tokens, tokens, True, seconds[i], token_times=(scored_at,) * tokens, label=choice
            )
        elif earlier is not None and earlier.text.startswith(text + ","):
            results[i] = replace(earlier, label=choice, seconds=seconds[i])
        else:
            redo.append(i)
    if redo:
        forced = [
            tokenizer(befores[i] + field.written(choices[i].value) + ",", add_special_tokens=False)["input_ids"]
            for i in redo
        ]
        rest = generate(
            model,
            tokenizer,
            [prompts[i] for i in redo],
            # max_new_tokens bounds the whole answer, the chosen start included
            max_new_tokens=max(1, max_new_tokens - max(len(f) for f in forced)),
            batch_size=batch_size,
            prefix=prefix,
            schema=schemas_of(redo),
            logprobs=logprobs,
            forced=forced,
            stop=None if stop is None else lambda k: stop(redo[k]),
        )
        for i, generation in zip(redo, rest, strict=True):
            results[i] = replace(generation, label=choices[i], seconds=seconds[i] + generation.seconds)
    return [r for r in results if r is not None]
