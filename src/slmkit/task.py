"""The behaviour spec: what goes in, what must come out, when to refuse or escalate.

`Task` turns a record into the prompt the model sees, an output into the exact target text it
is trained on, and a generated text back into a validated output. Training, evaluation and
serving all go through it, so the three can never disagree about the format.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from slmkit.config import SHORT_MAX_ENUM, ProjectConfig, TaskConfig, output_description
from slmkit.errors import ModelError


class ChatTokenizer(Protocol):
    chat_template: str | None

    def apply_chat_template(self, conversation: list[dict[str, str]], **kwargs: Any) -> Any: ...


@dataclass(frozen=True)
class Parsed:
    """A generated text read back: the value (when it is JSON), and why it is not valid."""

    text: str
    value: Any = None
    errors: tuple[str, ...] = ()
    is_json: bool = False

    @property
    def valid(self) -> bool:
        return self.is_json and not self.errors


VALIDATION_CACHE_SIZE = 100_000


@dataclass
class Task:
    cfg: TaskConfig
    schema: dict[str, Any]
    _validator: Any = field(init=False, repr=False)
    _checked: dict[str, tuple[str, ...]] = field(init=False, repr=False, default_factory=dict)
    _fast: Any = field(init=False, repr=False, default=None)

    def __post_init__(self) -> None:
        import jsonschema

        if self.cfg.retrieval is not None:
            settings = self.cfg.retrieval
            self.schema = with_citations(self.schema, settings.citations_field, None, settings.top_k)

        self._validator = jsonschema.Draft202012Validator(
            self.schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )
        self._fast = _fast_validator(self.schema)

    @classmethod
    def from_config(cls, config: ProjectConfig) -> Task:
        return cls(config.task, config.output_schema())

    # --- the spec ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.cfg.name

    @property
    def fields(self) -> list[str]:
        return list(self.schema.get("properties", {}))

    @property
    def labels(self) -> list[Any] | None:
        if self.cfg.label_field is None:
            return None
        return list(self.schema["properties"][self.cfg.label_field]["enum"])

    @property
    def refusal_output(self) -> dict[str, Any] | None:
        if self.cfg.refusal is None:
            return None
        output = dict(self.cfg.refusal.output)
        if self.cfg.retrieval is not None:
            output.setdefault(self.cfg.retrieval.citations_field, [])  # a refusal cites nothing
        return self.canonical(output)

    def is_refusal(self, output: Any) -> bool:
        refusal = self.refusal_output
        return refusal is not None and isinstance(output, dict) and self.canonical(output) == refusal

    def escalation_reason(self, input_text: str, output: Any) -> str | None:
        """Why this answer must go to a human, or None."""
        rule = self.cfg.escalation
        if rule is None:
            return None
        if isinstance(output, dict):
            for name, values in rule.when_output.items():
                if output.get(name) in values:
                    return f"{name} is {output.get(name)!r}"
        lowered = input_text.lower()
        for phrase in rule.when_input_contains:
            if phrase.lower() in lowered:
                return f"input mentions {phrase!r}"
        return None

    # --- prompts -------------------------------------------------------------------------

    def render_input(self, record: Mapping[str, Any]) -> str:
        """The user message for a record; missing or empty fields render as empty text."""
        values = {name: _as_text(record.get(name)) for name in self.cfg.input_fields}
        if self.cfg.input_template is not None:
            return self.cfg.input_template.format(**values).strip()
        if len(values) == 1:
            return next(iter(values.values())).strip()
        return "\n".join(f"{name}: {value}" for name, value in values.items()).strip()

    def system_message(self) -> str:
        parts = [self.cfg.system_prompt.strip()]
        if self.cfg.retrieval is not None:
            parts.append(
                "Answer only from the documents given with the question, and list in "
                f'"{self.cfg.retrieval.citations_field}" the ids of the documents the answer comes from.'
            )
        if self.cfg.refusal is not None and self.cfg.refusal.when:
            parts.append(
                f"{self.cfg.refusal.when.strip()} In that case answer exactly: "
                f"{self.format_output(self.refusal_output or self.cfg.refusal.output)}"
            )
        mode = output_description(self.schema, self.cfg.describe_output_in_prompt)
        if mode != "none":
            parts.append(self.describe_output(short=mode == "short"))
        return "\n".join(p for p in parts if p)

    def describe_output(self, *, short: bool = False) -> str:
        """A compact, model-readable description of the output object; `short` names the size of a
        long enum instead of listing it (a 77-label list costs ~800 tokens in every prompt)."""
        items = []
        for name, spec in self.schema.get("properties", {}).items():
            if short and len(spec.get("enum") or []) > SHORT_MAX_ENUM:
                items.append(f'"{name}": one of {len(spec["enum"])} labels')
            else:
                items.append(f'"{name}": {_describe_type(spec)}')
        return "Reply with only a JSON object: {" + ", ".join(items) + "}"

    # --- retrieval ----------------------------------------------------------------------

    def model_input(self, input_text: str, context: Sequence[Mapping[str, Any]] | None) -> str:
        """The user message the model sees: the input, after the retrieved chunks when the task retrieves.

        `context` holds a row's or a request's chunks as {"ref": "d1", "heading": ..., "text": ...}
        (as `slmkit.retrieval.context` records them); an empty context renders as such, so the
        model learns what "nothing was found" looks like.
        """
        if self.cfg.retrieval is None or context is None:
            return input_text
        blocks = [f"[{c['ref']}] {c.get('heading') or ''}".rstrip() + "\n" + str(c["text"]).strip() for c in context]
        documents = "\n\n".join(blocks) if blocks else "(no documents found)"
        return f"Documents:\n{documents}\n\nQuestion: {input_text}"

    def decoding_schema(self, context: Sequence[Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """The schema one answer is decoded under: with retrieval, its citations may only be the refs of
        `context`, the chunks this very row or request was given (none when nothing was retrieved)."""
        if self.cfg.retrieval is None:
            return self.schema
        refs = [str(c["ref"]) for c in context or ()]
        return with_citations(self.schema, self.cfg.retrieval.citations_field, refs, self.cfg.retrieval.top_k)

    def citation_problem(self, output: Any, context: Sequence[Mapping[str, Any]] | None) -> str | None:
        """Why an answer's citations are not among the refs it was given, or None."""
        if self.cfg.retrieval is None or not isinstance(output, dict):
            return None
        refs = {str(c["ref"]) for c in context or ()}
        cited = output.get(self.cfg.retrieval.citations_field) or []
        invented = [c for c in cited if c not in refs]
        return f"cites {', '.join(map(str, invented))}, which it was not given" if invented else None

    def messages(
        self, input_text: str, output: Any = None, history: Sequence[Mapping[str, str]] = ()
    ) -> list[dict[str, str]]:
        """System prompt, the earlier turns of a conversation (if any), the input, then the answer.

        The system prompt always comes first and alone, so every prompt of the task shares it
        as a prefix (generation and training compute it once per batch).
        """
        msgs = [{"role": "system", "content": self.system_message()}]
        msgs += [{"role": turn["role"], "content": turn["content"]} for turn in history]
        msgs.append({"role": "user", "content": input_text})
        if output is not None:
            msgs.append({"role": "assistant", "content": self.format_output(output)})
        return msgs

    def prompt_text(self, tokenizer: ChatTokenizer, input_text: str, history: Sequence[Mapping[str, str]] = ()) -> str:
        """The full prompt, through the model's chat template, ending where the answer starts."""
        _require_template(tokenizer)
        return str(
            tokenizer.apply_chat_template(
                self.messages(input_text, history=history), tokenize=False, add_generation_prompt=True
            )
        )

    def prompt_fingerprint(self, tokenizer: ChatTokenizer) -> str:
        """sha256 of the prompt for a placeholder input: the system message and the chat template.

        Recorded with every adapter, so evaluation and serving can prove they prompt the model
        exactly as it was trained.
        """
        return hashlib.sha256(self.prompt_text(tokenizer, "<input>").encode()).hexdigest()

    def training_texts(
        self, tokenizer: ChatTokenizer, input_text: str, output: Any, history: Sequence[Mapping[str, str]] = ()
    ) -> tuple[str, str]:
        """(prompt, completion): the completion is exactly what the model must learn to write.

        Split through the template so that loss lands on the answer and the template's own
        end-of-turn marker, never on the system prompt, the earlier turns or the user's text.
        """
        prompt = self.prompt_text(tokenizer, input_text, history)
        full = str(tokenizer.apply_chat_template(self.messages(input_text, output, history), tokenize=False))
        if not full.startswith(prompt):
            raise ModelError(
                "the chat template renders the prompt differently with and without the answer, so "
                "the answer tokens cannot be isolated",
                hint="use a model whose chat template appends the assistant turn after the generation prompt",
            )
        return prompt, full[len(prompt) :]

    # --- outputs -------------------------------------------------------------------------

    def canonical(self, output: Mapping[str, Any]) -> dict[str, Any]:
        """Keys in schema order (then the rest sorted), so equal answers are equal text."""
        order = {name: i for i, name in enumerate(self.fields)}
        keys = sorted(output, key=lambda k: (order.get(k, len(order)), k))
        return {k: output[k] for k in keys}

    def format_output(self, output: Mapping[str, Any]) -> str:
        """The exact target text for an output: canonical key order, one line."""
        return json.dumps(self.canonical(output), ensure_ascii=False)

    def validate(self, output: Any) -> list[str]:
        """Schema problems as 'field: message' strings; empty when the output is valid.

        A million-row build validates every answer, so valid answers take a compiled check
        (fastjsonschema, for schemas whose keywords mean the same in both drafts) and only
        invalid ones go to jsonschema for the exact messages. Without a compiled check, results
        are remembered by the answer's JSON text (a router has a few dozen distinct answers).
        """
        if self._fast is not None:
            try:
                self._fast(output)
                return []
            except Exception:
                return self._problems(output)
        try:
            text: str | None = json.dumps(output, sort_keys=True)
        except (TypeError, ValueError):
            text = None
        if text is not None and text in self._checked:
            return list(self._checked[text])
        problems = self._problems(output)
        if text is not None and len(self._checked) < VALIDATION_CACHE_SIZE:
            self._checked[text] = tuple(problems)
        return problems

    def _problems(self, output: Any) -> list[str]:
        errors = sorted(self._validator.iter_errors(output), key=lambda e: list(e.absolute_path))
        return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors]

    def parse(self, text: str) -> Parsed:
        """Read a generated answer: JSON (fences and trailing text tolerated), then the schema."""
        value, ok = _extract_json(text)
        if not ok:
            return Parsed(text=text, errors=("not a JSON object",))
        errors = self.validate(value)
        return Parsed(text=text, value=value, errors=tuple(errors), is_json=True)


def with_citations(schema: dict[str, Any], field_name: str, refs: list[str] | None, top_k: int) -> dict[str, Any]:
    """`schema` plus a citations array: of short refs ("d1".."dk") in general, and required and limited to
    exactly `refs` when they are given (one request's decoding schema)."""
    properties = dict(schema.get("properties", {}))
    if refs is None:
        items: dict[str, Any] = {"type": "string", "pattern": "^d[0-9]{1,2}$"}
        properties[field_name] = {"type": "array", "items": items, "maxItems": top_k}
        return {**schema, "properties": properties}
    spec: dict[str, Any] = {"type": "array", "maxItems": len(refs)}
    if refs:
        spec["items"] = {"type": "string", "enum": list(refs)}
    else:
        spec["items"] = {"type": "string", "enum": ["-"]}  # never written: maxItems 0
    properties[field_name] = spec
    required = [*schema.get("required", []), *([field_name] if field_name not in schema.get("required", []) else [])]
    return {**schema, "properties": properties, "required": required}


# Keywords that mean the same in draft-07 (what fastjsonschema compiles) and 2020-12 (what
# jsonschema checks). A schema using only these gets a compiled yes/no check per row; anything
# else (format, $ref, prefixItems, unevaluated*, ...) is always checked by jsonschema.
_FAST_KEYWORDS = frozenset(
    {
        "type", "enum", "const", "properties", "required", "additionalProperties", "pattern", "minLength",
        "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "items",
        "minItems", "maxItems", "uniqueItems", "anyOf", "oneOf", "allOf", "not", "title", "description",
        "default", "examples", "minProperties", "maxProperties",
    }
)  # fmt: skip


def _fast_validator(schema: dict[str, Any]) -> Any:
    """A compiled validity check for `schema`, or None when it could differ from jsonschema's verdict."""
    if not _only_fast_keywords(schema):
        return None
    try:
        import fastjsonschema

        return fastjsonschema.compile({**schema, "$schema": "http://json-schema.org/draft-07/schema#"})
    except Exception:
        return None


def _only_fast_keywords(node: Any) -> bool:
    if isinstance(node, bool):
        return True
    if not isinstance(node, dict):
        return False
    for key, value in node.items():
        if key not in _FAST_KEYWORDS and key != "$schema":
            return False
        if key == "properties" and not all(_only_fast_keywords(v) for v in value.values()):
            return False
        if key in ("additionalProperties", "items", "not") and not _only_fast_keywords(value):
            return False
        if key in ("anyOf", "oneOf", "allOf") and not all(_only_fast_keywords(v) for v in value):
            return False
    return True


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _describe_type(spec: Mapping[str, Any]) -> str:
    if "enum" in spec:
        return " | ".join(json.dumps(v) for v in spec["enum"])
    if "const" in spec:
        return json.dumps(spec["const"])
    kinds = spec.get("type", "any")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    words = {
        "string": "string",
        "integer": "integer",
        "number": "number",
        "boolean": "true | false",
        "null": "null",
        "array": "list",
        "object": "object",
    }
    return " | ".join(words.get(k, str(k)) for k in kinds)


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def _extract_json(text: str) -> tuple[Any, bool]:
    stripped = text.strip()
    fenced = _FENCE.match(stripped)
    if fenced:
        stripped = fenced.group(1)
    try:
        value = json.loads(stripped)
        return value, isinstance(value, dict)
    except json.JSONDecodeError:
        pass
    start = stripped.find("{")
    if start < 0:
        return None, False
    try:
        value, _ = json.JSONDecoder().raw_decode(stripped[start:])
    except json.JSONDecodeError:
        return None, False
    return value, isinstance(value, dict)


def _require_template(tokenizer: ChatTokenizer) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise ModelError(
            "the base model's tokenizer has no chat template, so prompts cannot be rendered",
            hint="use an instruct / chat model (e.g. smollm2-135m-instruct), or add a chat_template to its "
            "tokenizer_config.json",
        )
