"""What happens to a valid row before it is stored: personal data out, tokens counted, MinHash.

`Cleaner` holds the per-build tools (the PII scrubber, the base model's tokenizer, the MinHash
permutations) so a build loads each once. Personal data is replaced in every text a row
carries (input fields, the answer, chat history), and in what a reject shows and says, so no
file the build writes holds it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slmkit.config import ProjectConfig
from slmkit.data.dataset import Example
from slmkit.data.dedup import answer_hash
from slmkit.data.ingest import RawRow
from slmkit.data.normalize import dedup_key
from slmkit.data.rows import Reject, Row
from slmkit.data.validate import check_record
from slmkit.task import Task


@dataclass(frozen=True)
class Cleaned:
    """One valid, cleaned row ready for the spool, with the numbers the later stages decide on."""

    line: bytes  # the row's JSON line in the split files
    key: int  # 64 bits of its dedup key
    answer: int  # hash of its answer
    chars: int
    tokens: int
    label: str | None
    group: str | None
    output: dict[str, Any]
    gold_source: bool = False  # read from a source with role: gold


@dataclass
class ChunkResult:
    """What cleaning one chunk gave, in input order: kept rows and (reject, stage) pairs."""

    items: list[Cleaned | tuple[Reject, str]]
    signatures: np.ndarray | None
    pii_counts: Counter[str]
    rows_with_pii: int


def clean_chunk(cleaner: Cleaner, chunk: list[tuple[int, RawRow | Reject]]) -> ChunkResult:
    """Check, clean, count and MinHash one chunk of source rows (`(source index, row)` pairs)."""
    config, task = cleaner.config, cleaner.task
    before_counts, before_rows = Counter(cleaner.pii_counts), cleaner.rows_with_pii
    slots: list[Cleaned | tuple[Reject, str] | None] = []
    pending: list[tuple[int, Row, str | None, bool]] = []
    for source_index, item in chunk:
        if isinstance(item, Reject):
            slots.append((item, "read"))
            continue
        checked = check_record(
            task, item, config.data.sources[source_index], config.data.max_input_chars, config.data.normalize
        )
        if isinstance(checked, Reject):
            slots.append((checked, "validate"))
            continue
        cleaned = cleaner.scrub(checked)
        if isinstance(cleaned, Reject):
            slots.append((cleaned, "pii"))
            continue
        pending.append((len(slots), cleaned, cleaner.group_of(item), config.data.sources[source_index].role == "gold"))
        slots.append(None)
    kept_inputs: list[str] = []
    if pending:
        counts = cleaner.count_tokens([p[1].example for p in pending], [p[1].key for p in pending])
        label_field = task.cfg.label_field
        for (slot, row, group, gold_source), n_tokens in zip(pending, counts, strict=True):
            problem = cleaner.token_problem(n_tokens)
            if problem:
                slots[slot] = (row.reject("too_long", problem, "validate"), "token length")
                continue
            example = row.example
            record = example.as_dict()
            if group is not None:
                record["group"] = group
            slots[slot] = Cleaned(
                line=json.dumps(record, ensure_ascii=False).encode(),
                key=int(row.key[:16], 16),
                answer=answer_hash(example.output),
                chars=len(example.input),
                tokens=n_tokens,
                label=_label_name(example.label) if label_field else None,
                group=group,
                output=example.output,
                gold_source=gold_source,
            )
            kept_inputs.append(example.dedup_text)
    signatures = cleaner.signatures(kept_inputs) if kept_inputs and config.data.dedup.near.enabled else None
    items = [slot for slot in slots if slot is not None]
    found, rows_with_pii = cleaner.pii_counts - before_counts, cleaner.rows_with_pii - before_rows
    # The chunk's counts travel in the result and are added once by `absorb_counts`, in-process or not.
    cleaner.pii_counts, cleaner.rows_with_pii = before_counts, before_rows
    return ChunkResult(items, signatures, found, rows_with_pii)


_WORKER: Cleaner | None = None


def init_worker(config: ProjectConfig, token_sample: int) -> None:
    """Pool initializer: one Cleaner per worker process, loaded once."""
    global _WORKER
    _WORKER = Cleaner(config, Task.from_config(config), token_sample)


def worker_clean_chunk(chunk: list[tuple[int, RawRow | Reject]]) -> ChunkResult:
    assert _WORKER is not None, "init_worker did not run"
    return clean_chunk(_WORKER, chunk)


def _label_name(label: Any) -> str:
    return label if isinstance(label, str) else json.dumps(label)


class Cleaner:
    def __init__(self, config: ProjectConfig, task: Task, token_sample: int = 1) -> None:
        self.config = config
        self.task = task
        pii = config.data.pii
        self.pii_counts: Counter[str] = Counter()  # replacements in kept rows and the corpus
        self.reject_pii_counts: Counter[str] = Counter()  # replacements in what rejects show and say
        self.rows_with_pii = 0
        self._scrubber: Any = None
        if pii.enabled:
            from slmkit.data.pii import PiiScrubber

            self._scrubber = PiiScrubber(pii)
        near = config.data.dedup.near
        self._minhasher: Any = None
        if near.enabled:
            from slmkit.data.near import MinHasher

            self._minhasher = MinHasher(num_perm=near.num_perm, shingle=near.shingle)
        self.max_tokens = config.data.max_tokens or config.train.max_seq_len
        self._encode: Callable[[list[str]], list[int]] | None = None
        self.token_sample = token_sample
        self._overhead = 0
        self._turn_overhead = 0

    # --- personal data ----------------------------------------------------------------------

    def scrub(self, row: Row) -> Row | Reject:
        """The row with personal data replaced in its fields, history and answer."""
        if self._scrubber is None:
            return row
        example = row.example
        texts = dict(example.fields)
        history = list(getattr(example, "history", ()) or ())
        for turn, message in enumerate(history):
            texts[f"\x00history{turn}"] = message.get("content", "")
        new_texts, output, counts = self._scrubber.scrub_row(texts, example.output)
        if not counts:
            return row
        self.pii_counts.update(counts)
        self.rows_with_pii += 1
        fields = {name: new_texts[name] for name in example.fields}
        text = self.task.render_input(fields)
        changes: dict[str, Any] = {"input": text, "fields": fields, "output": output}
        if history:
            changes["history"] = tuple(
                {**message, "content": new_texts[f"\x00history{turn}"]} for turn, message in enumerate(history)
            )
        label = output.get(self.task.cfg.label_field) if self.task.cfg.label_field else None
        cleaned = Example(**{**_example_kwargs(example), **changes, "label": label})
        if output != example.output:
            problems = self.task.validate(output)
            if problems:
                return Row(cleaned, dedup_key(text)).reject(
                    "pii_schema",
                    f"after personal data was replaced the answer no longer fits the schema ({problems[0]}); add "
                    "the value to data.pii.keep if it is not personal, or relax the schema for placeholders",
                    "pii",
                )
        return Row(cleaned, dedup_key(text))

    def absorb_counts(self, result: ChunkResult) -> None:
        """Add a chunk's PII counts (from a worker process, or from this cleaner itself)."""
        self.pii_counts.update(result.pii_counts)
        self.rows_with_pii += result.rows_with_pii

    def scrub_value(self, value: Any) -> Any:
        """Any JSON value (a reject's raw record or reason) with personal data replaced."""
        if self._scrubber is None or value is None:
            return value
        if isinstance(value, str):
            texts, _, counts = self._scrubber.scrub_row({"text": value}, None)
            self.reject_pii_counts.update(counts)
            return texts["text"]
        _, scrubbed, counts = self._scrubber.scrub_row({}, value)
        self.reject_pii_counts.update(counts)
        return scrubbed

    def scrub_document(self, chunk: dict[str, Any]) -> dict[str, Any]:
        """A document chunk (corpus record or training context) with PII replaced in its text and in the
        headings around it (title, section path, heading), one placeholder per value across them."""
        if self._scrubber is None:
            return chunk
        fields = {k: chunk[k] for k in ("title", "section", "heading", "text") if isinstance(chunk.get(k), str)}
        texts, _, counts = self._scrubber.scrub_row(fields, None)
        self.pii_counts.update(counts)
        return {**chunk, **texts}

    def pii_report(self, canaries_checked: int) -> dict[str, Any]:
        pii = self.config.data.pii
        return {
            "enabled": pii.enabled,
            "entities": list(pii.entities),
            "ner": pii.ner,
            "rows_with_pii": self.rows_with_pii,
            "by_type": dict(sorted(self.pii_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            "in_rejects": dict(sorted(self.reject_pii_counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            "canaries": {"configured": len(pii.canaries), "checked": canaries_checked, "survived": 0},
        }

    # --- groups, tokens, MinHash ------------------------------------------------------------------

    def group_of(self, raw: RawRow) -> str | None:
        column = self.config.data.split.group_by
        if column is None:
            # The turns of one conversation (chat, turns: all) share their history: one group.
            return f"conversation {raw.source.split('#turn')[0]}" if "#turn" in raw.source else None
        value = raw.record.get(column)
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return value.strip() if isinstance(value, str) else json.dumps(value, sort_keys=True)

    def count_tokens(self, examples: Sequence[Example], keys: Sequence[str] | None = None) -> list[int]:
        """Prompt + answer length of each example in the base model's tokens, chat template included.

        The template adds the same tokens to every row (system prompt, role markers), measured
        once; the input, the answer and any history are counted per row in one batch.

        With `token_sample` > 1 (large builds), a row is tokenized only when it could be over the
        limit (a token never covers less than one UTF-8 byte, so bytes bound tokens) or when its
        dedup key falls in the 1-in-`token_sample` sample that the length histogram is drawn
        from; other rows are known to fit and get -1 (not measured).
        """
        encode = self._encoder()
        measured: list[int] = []
        texts: list[str] = []
        for position, example in enumerate(examples):
            answer = self.task.format_output(example.output)
            history = [message.get("content", "") for message in getattr(example, "history", ()) or ()]
            if self.token_sample > 1 and keys is not None and int(keys[position][-4:], 16) % self.token_sample:
                bound = len(example.input.encode()) + len(answer.encode()) + self._overhead
                bound += sum(len(text.encode()) + self._turn_overhead for text in history)
                if bound <= self.max_tokens:
                    continue
            measured.append(position)
            texts.extend([example.input, answer, *history])
        lengths = iter(encode(texts)) if texts else iter(())
        counts = [-1] * len(examples)
        for position in measured:
            example = examples[position]
            n = next(lengths) + next(lengths) + self._overhead
            for _ in getattr(example, "history", ()) or ():
                n += next(lengths) + self._turn_overhead
            counts[position] = n
        return counts

    def token_problem(self, n_tokens: int) -> str | None:
        if n_tokens <= self.max_tokens:
            return None
        setting = "data.max_tokens" if self.config.data.max_tokens else "train.max_seq_len (data.max_tokens unset)"
        return (
            f"prompt + answer is {n_tokens} tokens of {self.config.base_model}, over {setting}={self.max_tokens}; "
            "shorten the input or raise the limit"
        )

    def signatures(self, texts: Sequence[str]) -> np.ndarray:
        assert self._minhasher is not None
        result: np.ndarray = self._minhasher.signatures(list(texts))
        return result

    def _encoder(self) -> Callable[[list[str]], list[int]]:
        """Token counts of texts: the Rust tokenizer straight from tokenizer.json when the model has one
        (no transformers import: a build of ten thousand rows should not wait seconds for it)."""
        if self._encode is not None:
            return self._encode
        from slmkit.models.resolve import resolve_base_model

        ref = resolve_base_model(self.config.base_model, self.config.root)
        tokenizer_file = ref.path / "tokenizer.json"
        template = _template_text(ref.path)
        if tokenizer_file.is_file() and template is not None:
            from tokenizers import Tokenizer

            fast = Tokenizer.from_file(str(tokenizer_file))

            def encode(texts: list[str]) -> list[int]:
                return [len(e.ids) for e in fast.encode_batch(texts, add_special_tokens=False)]

            render = _jinja_renderer(template, ref.path)
        else:
            from slmkit.models.load import load_tokenizer

            slow = load_tokenizer(ref)

            def encode(texts: list[str]) -> list[int]:
                return [len(ids) for ids in slow(texts, add_special_tokens=False)["input_ids"]]

            def render(messages: list[dict[str, str]]) -> str:
                return str(slow.apply_chat_template(messages, tokenize=False))

        empty_answer = self.task.format_output({})
        one_turn = render(self.task.messages("", {}))
        two_turns = render([self.task.messages("", {})[0], *_turn_pair(), *self.task.messages("", {})[1:]])
        base = encode([one_turn, empty_answer])
        self._overhead = base[0] - base[1]
        self._turn_overhead = max(0, (encode([two_turns])[0] - base[0]) // 2)
        self._encode = encode
        return encode


def _example_kwargs(example: Example) -> dict[str, Any]:
    from dataclasses import fields

    return {f.name: getattr(example, f.name) for f in fields(example)}


def _turn_pair() -> list[dict[str, str]]:
    return [{"role": "user", "content": ""}, {"role": "assistant", "content": ""}]


def _template_text(model_dir: Path) -> str | None:
    """The model's chat template (chat_template.jinja or tokenizer_config.json), if it has one."""
    jinja = model_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text(encoding="utf-8")
    config = model_dir / "tokenizer_config.json"
    if config.is_file():
        template = json.loads(config.read_text(encoding="utf-8")).get("chat_template")
        return template if isinstance(template, str) else None
    return None


def _jinja_renderer(template: str, model_dir: Path) -> Callable[[list[dict[str, str]]], str]:
    """Render the chat template the way transformers does for counting: sandboxed, no generation prompt."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    config_file = model_dir / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}

    def raise_exception(message: str) -> None:
        raise ValueError(message)

    def strftime_now(format: str) -> str:
        import datetime

        return datetime.datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    compiled = env.from_string(template)
    specials = {k: v for k, v in config.items() if k.endswith("_token") and isinstance(v, str)}

    def render(messages: list[dict[str, str]]) -> str:
        return compiled.render(messages=messages, add_generation_prompt=False, **specials)

    return render
