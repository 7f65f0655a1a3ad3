"""Batched greedy generation, shared by evaluation and serving so both decode the same way.

Every prompt of a task starts with the same system message (tone, refusal rule, output
format): often most of the prompt. Its keys and values are computed once and reused by every
row of every batch, so prefill only pays for the part that differs.
"""

from __future__ import annotations

import copy
import inspect
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

MIN_SHARED_TOKENS = 16  # below this, copying the cache costs about what it saves


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finished: bool  # ended on an end-of-turn token, not on the length limit
    seconds: float  # wall time of the batch it ran in
    # time.perf_counter() when each completion token was produced (the stop token included):
    # serving's time-to-first-token and inter-token latency are measured from these.
    token_times: tuple[float, ...] = ()
    # With `logprobs=True`: the natural log of the probability the model gave each completion
    # token (the stop token included), from its raw logits, before any constraint masked them.
    token_logprobs: tuple[float, ...] = ()
    # With label scoring (slmkit.models.labels): the label field's chosen value, its probability
    # among the allowed values and its nearest rivals (a LabelChoice).
    label: Any = None


@dataclass(frozen=True)
class SharedPrefix:
    """The key/value cache of token ids that prompts start with, computed by one model.

    Valid only for the model that computed it; `generate` copies it for each batch, so one
    instance serves any number of calls.
    """

    ids: tuple[int, ...]
    cache: Any

    @classmethod
    def compute(cls, model: Any, ids: Sequence[int]) -> SharedPrefix:
        import torch

        with torch.inference_mode():
            out = model(input_ids=torch.tensor([list(ids)], dtype=torch.long, device=model.device), use_cache=True)
        cache = getattr(out, cache_argument(model), None)
        if cache is None or not hasattr(cache, "batch_repeat_interleave"):
            raise ValueError(f"{type(model).__name__} returned no reusable key/value cache")
        return cls(tuple(ids), cache)

    @classmethod
    def maybe(cls, model: Any, ids: Sequence[int]) -> SharedPrefix | None:
        """The cache for `ids` when it is worth keeping and the model can reuse one; else None."""
        if len(ids) < MIN_SHARED_TOKENS:
            return None
        try:
            return cls.compute(model, ids)
        except ValueError:  # an architecture without a reusable cache: prefill everything
            return None

    def fits(self, encoded: Sequence[Sequence[int]]) -> bool:
        """Every prompt starts with these ids and has at least one token after them."""
        n = len(self.ids)
        return all(len(ids) > n and tuple(ids[:n]) == self.ids for ids in encoded)


def common_prefix(encoded: Sequence[Sequence[int]]) -> list[int]:
    """The longest run of ids every prompt starts with, leaving each at least one token of its own."""
    if not encoded:
        return []
    first, n = encoded[0], min(len(ids) for ids in encoded) - 1
    for ids in encoded[1:]:
        n = next((k for k in range(n) if ids[k] != first[k]), n)
    return list(first[: max(n, 0)])


def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    *,
    max_new_tokens: int,
    batch_size: int = 16,
    temperature: float = 0.0,
    seed: int | None = None,
    prefix: SharedPrefix | None = None,
    schema: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
    logprobs: bool = False,
    forced: Sequence[Sequence[int]] | None = None,
    stop: Callable[[int], bool] | None = None,
) -> list[Generation]:
    """Completions for fully rendered prompts, in input order; greedy unless temperature > 0.

    Prompts are grouped by length so a batch carries little padding. A row is laid out as
    [shared prefix][left padding][rest of the prompt], so every row's answer starts at the same
    position and the prefix's keys/values are reused. `prefix` is that cache when the caller
    keeps one (a server, per loaded model); without it, one is computed for this call when the
    prompts share at least MIN_SHARED_TOKENS tokens. With `schema`, decoding is constrained to
    JSON valid under it (slmkit.models.constrain); callers check `schema_constraint` first. A list
    gives each prompt its own schema (a retrieval task's citations: only that prompt's chunk refs).
    With `logprobs`, each Generation carries its tokens' log-probabilities (eval's confidence).
    `forced[i]`, when given, is the start of prompt i's answer, already chosen (label scoring's
    label): decoding continues after it, the schema's matcher having read it, and it is part of
    the answer's text and tokens.
    `stop(i)` is asked after every token: True ends prompt i's answer there (its caller gave up on
    it, e.g. a server request that timed out), and a batch whose rows all stopped ends at once.
    """
    import torch

    if not prompts:
        return []
    stop_ids = stop_token_ids(model, tokenizer)
    constraint = schema_constraint(model, tokenizer, schema) if isinstance(schema, dict) else None
    row_constraints = None
    if schema is not None and not isinstance(schema, dict):
        if len(schema) != len(prompts):
            raise ValueError(f"{len(schema)} schemas for {len(prompts)} prompts")
        compiled: dict[str, Any] = {}  # prompts with the same schema share one compiled constraint
        row_constraints = []
        for row_schema in schema:
            key = json.dumps(row_schema, sort_keys=True)
            if key not in compiled:
                compiled[key] = schema_constraint(model, tokenizer, row_schema)
            row_constraints.append(compiled[key])
    starts = [list(f) for f in forced] if forced is not None else [[] for _ in prompts]
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] + f for p, f in zip(prompts, starts, strict=True)]
    if prefix is None or not prefix.fits(encoded):
        shared = common_prefix(encoded) if len(prompts) > 1 else []
        prefix = SharedPrefix.maybe(model, shared)
    head = len(prefix.ids) if prefix is not None else 0
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    results: list[Generation | None] = [None] * len(prompts)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = head + max(len(encoded[i]) - head for i in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            ids = encoded[i]
            input_ids[r, :head] = torch.tensor(ids[:head], dtype=torch.long)
            attention[r, :head] = 1
            input_ids[r, width - len(ids) + head :] = torch.tensor(ids[head:], dtype=torch.long)
            attention[r, width - len(ids) + head :] = 1
        cached: dict[str, Any] = {}
        if prefix is not None:
            cache = copy.deepcopy(prefix.cache)  # generate appends to it
            cache.batch_repeat_interleave(len(rows))
            cached[cache_argument(model)] = cache
        began = time.perf_counter()
        clock = _TokenClock()
        recorder = _LogprobRecorder() if logprobs else None
        sampling: dict[str, Any] = {"do_sample": False}
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
            if seed is not None:
                torch.manual_seed(seed + start)
        processors: list[Any] = [recorder.observe] if recorder is not None else []  # first: it sees the raw logits
        forced_rows = [starts[i] for i in rows]  # each matcher reads its row's forced start first
        if constraint is not None:
            processors.append(constraint.processor(forced_rows))  # fresh matchers for each batch
        elif row_constraints is not None:
            from slmkit.models.constrain import rows_processor

            processors.append(rows_processor([row_constraints[i] for i in rows], forced_rows))
        if processors:
            sampling["logits_processor"] = processors
        criteria: list[Any] = [clock] if recorder is None else [recorder.record, clock]
        if stop is not None:
            criteria.append(_Stopped(rows, stop))
        with torch.inference_mode():
            output = model.generate(
                input_ids=input_ids.to(model.device),
                attention_mask=attention.to(model.device),
                max_new_tokens=max_new_tokens,
                num_beams=1,
                **sampling,
                pad_token_id=pad_id,
                eos_token_id=stop_ids,
                stopping_criteria=criteria,
                **cached,
            )
        seconds = time.perf_counter() - began
        for r, i in enumerate(rows):
            new = output[r, width:].tolist()
            finished = False
            for cut, token in enumerate(new):
                if token in stop_ids:
                    new, finished = new[:cut], True
                    break
            completion_tokens = len(new) + (1 if finished else 0)
            results[i] = Generation(
                text=tokenizer.decode(starts[i] + new, skip_special_tokens=True),
                prompt_tokens=len(encoded[i]) - len(starts[i]),
                completion_tokens=len(starts[i]) + completion_tokens,
                finished=finished,
                seconds=seconds,
                # the forced start exists when decoding begins; each decoded token when it was chosen
                token_times=(began,) * len(starts[i]) + tuple(clock.times[:completion_tokens]),
                token_logprobs=tuple(recorder.row(r)[:completion_tokens]) if recorder is not None else (),
            )
    return [g for g in results if g is not None]


def schema_constraint(model: Any, tokenizer: Any, schema: dict[str, Any]) -> Any:
    """The compiled constraint for decoding `schema` with this model; ConstraintUnsupported if it cannot be."""
    from slmkit.models.constrain import SchemaConstraint

    vocab = int(model.get_output_embeddings().weight.shape[0])
    return SchemaConstraint(schema, tokenizer, vocab, stop_token_ids(model, tokenizer))


class _TokenClock:
    """A stopping criterion that never stops: generate calls it once per step, right after the
    step's tokens are chosen, so its timestamps are when each position's token was produced."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        self.times.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


class _Stopped:
    """A stopping criterion: the rows whose caller no longer wants them (see `generate`'s `stop`)."""

    def __init__(self, rows: list[int], stop: Callable[[int], bool]) -> None:
        self.rows = rows
        self.stop = stop

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.tensor([self.stop(i) for i in self.rows], dtype=torch.bool, device=input_ids.device)


class _LogprobRecorder:
    """Each row's log-probability of every token it generated: `observe` (a logits processor, first
    in the list, so it sees the raw logits) keeps the step's distribution; `record` (a stopping
    criterion, called once the token is chosen) keeps the chosen token's value. Neither alters or stops."""

    def __init__(self) -> None:
        self._last: Any = None
        self.steps: list[list[float]] = []  # per step, one value per row

    def observe(self, input_ids: Any, scores: Any) -> Any:
        import torch

        self._last = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def record(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        chosen = self._last.gather(1, input_ids[:, -1:].to(self._last.device)).squeeze(1)
        self.steps.append(chosen.tolist())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    def row(self, r: int) -> list[float]:
        return [step[r] for step in self.steps]


def cache_argument(module: Any) -> str:
    """The name a model's forward (and generate) uses for the key/value cache, also the name of
    the output field holding it: transformers 5 renamed past_key_values to cache."""
    inner = module.get_base_model() if hasattr(module, "get_base_model") else module  # under a PEFT wrapper
    return "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """End-of-turn ids: the tokenizer's eos plus the generation config's (chat models often differ)."""
    ids: list[int] = []
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        for token in value if isinstance(value, list) else [value]:
            if token is not None and token not in ids:
                ids.append(int(token))
    if not ids:
        raise ValueError("the tokenizer has no end-of-sequence token; generation would never stop")
    return ids
