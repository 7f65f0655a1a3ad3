"""Decoding under the task's JSON schema: at each step only tokens that keep the answer a valid
prefix of some schema-valid JSON can be chosen (llguidance computes the allowed set).

A label field can then only be one of its enum values, and the answer is always parseable JSON
with the schema's keys in the schema's order, written the way training targets are written
(`json.dumps` separators, one line). Evaluation and serving both decode through here when
constrained decoding is on, so an offline number is the number production gets.

Schemas using keywords llguidance cannot enforce raise ConstraintUnsupported when compiled;
callers fall back to unconstrained decoding (the guard still validates every answer).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from typing import Any

_GRAMMARS: dict[str, str] = {}
_LOCK = threading.Lock()


class ConstraintUnsupported(ValueError):
    """llguidance cannot enforce this schema."""


class SchemaConstraint:
    """A compiled schema for one tokenizer; `processor()` makes a fresh logits processor per batch."""

    def __init__(self, schema: dict[str, Any], tokenizer: Any, vocab_size: int, stop_ids: Sequence[int]) -> None:
        import llguidance

        self.tokenizer = _llg_tokenizer(tokenizer, vocab_size, stop_ids)
        self.grammar = _grammar(schema)
        probe = llguidance.LLMatcher(self.tokenizer, self.grammar)
        if probe.is_error():
            raise ConstraintUnsupported(probe.get_error())
        self.stop_ids = tuple(stop_ids)

    def processor(self, forced: Sequence[Sequence[int]] | None = None) -> Any:
        """A logits processor for one batch; `forced[r]`: row r's answer tokens already chosen."""
        return _MaskingProcessor([self], forced)


def rows_processor(constraints: Sequence[SchemaConstraint], forced: Sequence[Sequence[int]] | None = None) -> Any:
    """A logits processor decoding row i of a batch under constraints[i] (one request's own schema each,
    e.g. citations limited to the chunks that request retrieved). All must share one tokenizer."""
    return _MaskingProcessor(list(constraints), forced)


class _MaskingProcessor:
    """A transformers logits processor: one matcher per row, fed each row's last chosen token.

    One constraint for every row, or one per row (`rows_processor`); `forced[r]`: row r's answer
    tokens already chosen (label scoring's label), read by its matcher before the first step.
    """

    def __init__(self, constraints: list[SchemaConstraint], forced: Sequence[Sequence[int]] | None = None) -> None:
        self.constraints = constraints
        self.constraint = constraints[0]  # the tokenizer, vocabulary and stop ids all rows share
        self.forced = forced
        self.matchers: list[Any] = []
        self.bitmask: Any = None
        self.shifts: Any = None

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import llguidance
        import llguidance.torch as llt
        import torch

        rows = input_ids.shape[0]
        if not self.matchers:  # the first step: nothing generated yet
            per_row = self.constraints if len(self.constraints) == rows else [self.constraint] * rows
            self.matchers = [llguidance.LLMatcher(c.tokenizer, c.grammar) for c in per_row]
            for matcher, tokens in zip(self.matchers, self.forced or [], strict=False):
                if tokens:
                    matcher.consume_tokens(list(tokens))
            self.bitmask = llt.allocate_token_bitmask(rows, self.constraint.tokenizer.vocab_size)
            self.shifts = torch.arange(32, dtype=torch.int32)
        else:
            last = input_ids[:, -1].tolist()
            for matcher, token in zip(self.matchers, last, strict=True):
                if not matcher.is_stopped() and not matcher.is_error():
                    matcher.consume_token(token)
        ended = []  # the answer is complete (or the matcher lost track): only a stop token may follow
        for row, matcher in enumerate(self.matchers):
            if matcher.is_stopped() or matcher.is_error():
                ended.append(row)
                self.bitmask[row].fill_(0)
            else:
                llt.fill_next_token_bitmask(matcher, self.bitmask, row)
        # The bitmask holds 32 tokens per int32, lowest bit first. Unpacked in one vectorized step
        # (llguidance's CPU apply takes ~0.4 s per call here); output-head rows beyond the
        # tokenizer's vocabulary are never allowed.
        allowed = ((self.bitmask.unsqueeze(-1) >> self.shifts) & 1).bool().view(rows, -1).to(scores.device)
        width = min(scores.shape[-1], allowed.shape[-1])
        scores[:, :width].masked_fill_(~allowed[:, :width], float("-inf"))
        scores[:, width:] = float("-inf")
        for row in ended:
            scores[row, list(self.constraint.stop_ids)] = 0.0
        return scores


def _llg_tokenizer(tokenizer: Any, vocab_size: int, stop_ids: Sequence[int]) -> Any:
    """llguidance's view of a transformers tokenizer (built once per tokenizer: ~1 s for 49k tokens)."""
    import llguidance.hf

    key = (vocab_size, tuple(stop_ids))
    with _LOCK:
        built = tokenizer.__dict__.setdefault("_slmkit_llguidance", {})  # lives and dies with the tokenizer
        if key not in built:
            built[key] = llguidance.hf.from_tokenizer(tokenizer, n_vocab=vocab_size, eos_token=list(stop_ids))
        return built[key]


def _grammar(schema: dict[str, Any]) -> str:
    """The schema as an llguidance grammar, written like training targets (json.dumps, one line)."""
    import llguidance

    text = json.dumps(schema, sort_keys=True)
    with _LOCK:
        if text not in _GRAMMARS:
            options = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}
            try:
                _GRAMMARS[text] = llguidance.LLMatcher.grammar_from_json_schema(
                    schema,
                    defaults=options,  # type: ignore[arg-type]
                )
            except (ValueError, TypeError) as exc:
                raise ConstraintUnsupported(str(exc)) from None
        return _GRAMMARS[text]


def answer_token_bound(schema: dict[str, Any], tokenizer: Any, margin: int = 4) -> int | None:
    """Most tokens an answer under `schema` takes (json.dumps layout, one line, plus the stop token),
    or None when the schema lets an answer grow without bound (free strings, arrays, ...).

    The longest answer is written out and tokenized whole: each property takes its alternative
    with the most tokens (enum / const values as written, `null`, `false`); a string bounded by
    maxLength (two tokens per character: rare characters split into bytes) or by a pattern's
    longest match (one per character: such patterns are ASCII) adds its width to an empty
    string. Tokens merge a little differently around other values, so `margin` more are
    allowed; under constrained decoding an answer ends itself at its closing brace anyway, and
    the bound only stops a runaway row early.
    """
    if schema.get("type", "object") != "object" or not isinstance(schema.get("properties"), dict):
        return None

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    longest: dict[str, Any] = {}
    extra = 0
    for name, spec in schema["properties"].items():
        choice = _longest_value(spec, count)
        if choice is None:
            return None
        longest[name], width = choice
        extra += width
    return count(json.dumps(longest, ensure_ascii=False)) + extra + margin + 1  # + the stop token


def _longest_value(spec: Any, count: Any) -> tuple[Any, int] | None:
    """(the value with the most tokens, tokens to add for a bounded string written as ""), or None."""
    import re._parser as sre  # the regex parser's width bounds

    if not isinstance(spec, dict):
        return None
    if "enum" in spec or "const" in spec:
        values = spec.get("enum", [spec.get("const")])
        return max(values, key=lambda v: count(json.dumps(v, ensure_ascii=False))), 0
    types = spec.get("type", [])
    options: list[tuple[Any, int]] = []
    for kind in [types] if isinstance(types, str) else list(types):
        if kind == "null":
            options.append((None, count("null") - count('""')))
        elif kind == "boolean":
            options.append((False, count("false") - count('""')))
        elif kind == "string" and "maxLength" in spec:
            options.append(("", 2 * int(spec["maxLength"])))
        elif kind == "string" and "pattern" in spec:
            width = sre.parse(spec["pattern"]).getwidth()[1]
            if width >= sre.MAXREPEAT:
                return None
            options.append(("", int(width)))
        else:
            return None  # an unbounded string, a number, an array or a nested object
    if not options:
        return None
    return max(options, key=lambda option: option[1])
