"""`slmkit init --from FILE`: a project inferred from the data a team already has.

Reads a JSONL or CSV/TSV export and infers, column by column:
- the answer: a column of JSON objects (its keys are the output fields), or else the label column
  (a name like label / intent / category, or the text column with the fewest distinct values);
- the output schema: an enum for a field with few distinct values (with each value's count), else
  its type, `null` allowed when it was seen, and a pattern when every value has one shape
  (`ORD-[0-9]{6}`, `[0-9]{4}-[0-9]{2}-[0-9]{2}`);
- the label field: the enum field the task routes on;
- the inputs: the free-text columns left (an id column becomes the source's id_field).

Every choice is written into slmkit.yaml with a comment saying what it was inferred from, and
printed, for the user to confirm before the first build.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmkit.errors import DataError

MAX_ROWS = 200_000  # read at most this many rows to infer from
MOSTLY = 0.9  # a column is of a kind when this share of its present values are
PATTERN_SHARE = 0.98  # a field gets a pattern when this share of its values have one shape
RARE = 0.01  # an enum value seen in less than this share of rows (and under 5) is flagged
ENUM_MAX = 200  # more distinct values than this is not a label set
LABEL_NAMES = ("label", "labels", "intent", "category", "class", "queue", "topic", "target", "team", "route", "tag")
OUTPUT_NAMES = ("output", "answer", "response", "completion", "target", "json")
ID_NAMES = ("id", "ticket_id", "uid", "uuid", "key", "row_id")


@dataclass
class Column:
    name: str
    values: list[Any] = field(default_factory=list)  # one per row, None where absent or empty

    @property
    def present(self) -> list[Any]:
        return [v for v in self.values if v is not None]

    @property
    def distinct(self) -> int:
        return len({_hashable(v) for v in self.present})

    def objects(self) -> list[dict[str, Any]] | None:
        """The values that are JSON objects (or JSON text of one) when MOSTLY of the present ones are, else None.

        Exports carry a few broken rows; the build rejects those with their reasons, they need not
        stop the inference.
        """
        found = []
        for value in self.present:
            if isinstance(value, str) and value.strip().startswith("{"):
                try:
                    value = json.loads(value)
                except ValueError:
                    continue
            if isinstance(value, dict):
                found.append(value)
        return found if found and len(found) >= MOSTLY * len(self.present) else None

    def is_text(self) -> bool:
        texts = sum(isinstance(v, str) for v in self.present)
        return texts > 0 and texts >= MOSTLY * len(self.present)

    def is_free_text(self) -> bool:
        """Text people wrote (words with spaces), not an id, a code or a timestamp."""
        texts = [v for v in self.present if isinstance(v, str)]
        return self.is_text() and sum(" " in v.strip() for v in texts) >= 0.5 * len(texts)

    def mean_chars(self) -> float:
        texts = [v for v in self.present if isinstance(v, str)]
        return sum(map(len, texts)) / len(texts) if texts else 0.0


@dataclass
class Inferred:
    """The project inferred from one file, and why each choice was made."""

    path: Path
    format: str
    rows: int
    input_fields: list[str]
    schema: dict[str, Any]
    label_field: str | None
    output_field: str | None  # a column of JSON objects, or None when output_columns assemble the answer
    output_columns: dict[str, str]
    id_field: str | None
    counts: dict[str, Counter[Any]]  # per enum field, how often each value occurs
    why: dict[str, str]  # yaml path -> what the choice was inferred from

    def lines(self) -> list[str]:
        """What was inferred, one line per choice, for the terminal."""
        return [f"  {path}: {reason}" for path, reason in self.why.items()]


def read_rows(path: Path) -> tuple[str, list[dict[str, Any]]]:
    """(format, rows) of a JSONL or CSV / TSV file: at most MAX_ROWS rows."""
    if not path.is_file():
        raise DataError(f"{path}: no such file", hint="give the path of a JSONL, CSV or TSV export")
    suffix = path.suffix.lower()
    rows: list[dict[str, Any]] = []
    if suffix in (".jsonl", ".json", ".ndjson"):
        with path.open(encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    record = None
                if not isinstance(record, dict):
                    continue  # a broken line says nothing about the others; the build rejects it with its reason
                rows.append(record)
                if len(rows) >= MAX_ROWS:
                    break
        return "jsonl", rows
    if suffix in (".csv", ".tsv"):
        with path.open(encoding="utf-8", newline="") as fh:
            reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
            for record in reader:
                rows.append(dict(record))
                if len(rows) >= MAX_ROWS:
                    break
        return suffix[1:], rows
    raise DataError(
        f"{path}: cannot infer a project from a {suffix or 'suffix-less'} file", hint="use JSONL, CSV or TSV"
    )


def infer_project(path: Path) -> Inferred:
    """Infer inputs, the answer, its schema and the label field from the rows of `path`."""
    fmt, rows = read_rows(path)
    if len(rows) < 2:
        raise DataError(f"{path}: {len(rows)} row(s); at least two are needed to infer anything")
    names = list(dict.fromkeys(key for row in rows for key in row))
    columns = {name: Column(name, [_cell(row.get(name)) for row in rows]) for name in names}
    why: dict[str, str] = {}

    answer = next(
        (c for c in _by_name(columns, OUTPUT_NAMES) if c.objects() and len(c.present) >= 0.9 * len(rows)), None
    ) or next((c for c in columns.values() if c.objects() and len(c.present) >= 0.9 * len(rows)), None)
    output_columns: dict[str, str] = {}
    if answer is not None:
        objects = answer.objects() or []
        keys = list(dict.fromkeys(k for obj in objects for k in obj))
        fields = {k: Column(k, [obj.get(k) for obj in objects]) for k in keys}
        why["data.sources[0].output_field"] = f"'{answer.name}' holds a JSON object in {len(objects):,} rows"
        used = {answer.name}
    else:
        label = _label_column(columns, len(rows))
        if label is None:
            raise DataError(
                f"{path}: found no answer to learn: no column of JSON objects and no label-like column",
                hint="add a column holding each row's answer (a label, or a JSON object), or write slmkit.yaml with "
                "`slmkit init --template`",
            )
        fields = {label.name: label}
        output_columns = {label.name: label.name}
        why["data.sources[0].output_columns"] = (
            f"'{label.name}' is the label column: {label.distinct} distinct values over {len(label.present):,} rows"
        )
        used = {label.name}

    schema: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": list(fields),
        "properties": {},
    }
    counts: dict[str, Counter[Any]] = {}
    for name, column in fields.items():
        spec, reason = _field_schema(column, len(column.values))
        schema["properties"][name] = spec
        why[f"task.output_schema.properties.{name}"] = reason
        if "enum" in spec:
            counts[name] = Counter(_hashable(v) for v in column.values)
    enums = [
        n for n, s in schema["properties"].items() if "enum" in s and len([v for v in s["enum"] if v is not None]) >= 2
    ]
    label_field = next((n for n in enums if n.lower() in LABEL_NAMES), None) or (enums[0] if enums else None)
    if label_field is not None:
        why["task.label_field"] = f"'{label_field}': an enum of {len(schema['properties'][label_field]['enum'])} values"

    ids = [c for c in columns.values() if _id_like(c.name) and c.name not in used]
    id_field = next((c.name for c in ids if c.distinct >= 0.95 * len(rows)), None)
    if id_field:
        why["data.sources[0].id_field"] = (
            f"'{id_field}': named like an id, distinct in {columns[id_field].distinct:,} rows"
        )
    used |= {c.name for c in ids}
    inputs = [
        c.name
        for c in columns.values()
        if c.name not in used
        and c.is_free_text()
        and (c.distinct > min(ENUM_MAX, len(rows) // 2) or c.mean_chars() >= 40)
    ]
    if not inputs:
        raise DataError(f"{path}: found no free-text column to use as the input", hint="columns: " + ", ".join(names))
    why["task.input_fields"] = ", ".join(
        f"'{n}' (text, {columns[n].distinct:,} distinct values, {columns[n].mean_chars():.0f} characters on average)"
        for n in inputs
    )
    return Inferred(
        path, fmt, len(rows), inputs, schema, label_field, answer.name if answer else None, output_columns,
        id_field, counts, why,
    )  # fmt: skip


def _id_like(name: str) -> bool:
    lowered = name.lower()
    return lowered in ID_NAMES or lowered.endswith(("_id", "-id", " id"))


def _by_name(columns: dict[str, Column], names: tuple[str, ...]) -> list[Column]:
    return [c for c in columns.values() if c.name.lower() in names]


def _label_column(columns: dict[str, Column], rows: int) -> Column | None:
    """The column the rows are labelled by: label-like name first, else the text column with the fewest values."""
    fits = [
        c
        for c in columns.values()
        if c.is_text()
        and not _id_like(c.name)
        and 2 <= c.distinct <= min(ENUM_MAX, max(2, rows // 2))
        and c.mean_chars() < 60
    ]
    named = [c for c in fits if c.name.lower() in LABEL_NAMES]
    if named:
        return named[0]
    return min(fits, key=lambda c: c.distinct) if fits else None


def _field_schema(column: Column, rows: int) -> tuple[dict[str, Any], str]:
    """A field's JSON schema and the sentence saying why."""
    present = column.present
    nulls = len(column.values) - len(present)
    nullable = f", null in {nulls:,} rows" if nulls else ""
    scalars = [v for v in present if isinstance(v, str | int | float | bool)]
    distinct = len({_hashable(v) for v in present})
    if len(scalars) >= MOSTLY * len(present) and present and distinct <= min(ENUM_MAX, max(2, rows // 4)):
        enum: list[Any] = sorted(set(scalars), key=lambda v: (type(v).__name__, v))
        reason = f"an enum: {len(enum)} distinct values over {rows:,} rows{nullable}"
        return {"enum": [*enum, *([None] if nulls else [])]}, reason
    kinds = {_json_type(v) for v in present} or {"string"}
    if kinds == {"integer", "number"}:
        kinds = {"number"}
    types = sorted(kinds) + (["null"] if nulls else [])
    spec: dict[str, Any] = {"type": types[0] if len(types) == 1 else types}
    reason = f"{' or '.join(types)}: {distinct:,} distinct values{nullable}"
    if kinds == {"string"}:
        found = _common_pattern([v for v in present if isinstance(v, str)])
        if found:
            spec["pattern"], misses = found
            reason += f"; values have the shape {spec['pattern']}" + (
                f" ({misses} do not: the build will reject those rows, check them)" if misses else ""
            )
    return spec, reason


def _common_pattern(values: list[str]) -> tuple[str, int] | None:
    """(a regex, how many values miss it) when nearly all values share one shape with digits in it
    (ids, dates, codes); the few that miss are what the build will reject, so the comment says how many."""
    shapes = Counter(_shape(v) for v in values)
    if not shapes or len(values) < 2:
        return None
    shape, count = shapes.most_common(1)[0]
    if count < PATTERN_SHARE * len(values) or "[0-9]" not in shape or len(shape) >= 120:
        return None
    return f"^{shape}$", len(values) - count


def _shape(value: str) -> str:
    parts = []
    for run in re.finditer(r"[0-9]+|[^0-9]+", value):
        text = run.group(0)
        parts.append(f"[0-9]{{{len(text)}}}" if text.isdigit() else re.escape(text).replace("\\-", "-"))
    return "".join(parts)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _cell(value: Any) -> Any:
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, dict | list) else value


def project_yaml(inferred: Inferred, name: str, data_path: str) -> str:
    """slmkit.yaml for the inferred project: every inferred choice commented with what it came from."""
    why = inferred.why

    def note(path: str) -> str:
        return f"  # inferred: {why[path]}" if path in why else ""

    def flow(value: Any) -> str:
        return json.dumps(value, ensure_ascii=False)  # JSON is YAML: quoted strings, [lists], {maps}

    lines = [
        f"# slmkit project inferred by `slmkit init --from {inferred.path.name}` from {inferred.rows:,} rows.",
        "# Every line marked `inferred` is a guess from the data: check it, then run `slmkit validate`.",
        "",
        "base_model: smollm2-135m-instruct",
        "",
        "task:",
        f"  name: {flow(name)}",
        f"  input_fields: {flow(inferred.input_fields)}{note('task.input_fields')}",
        "  # Write one line on what the model does: the system prompt every example is trained with.",
        f"  system_prompt: {flow('You read ' + ', '.join(inferred.input_fields) + ' and answer with JSON.')}",
        "  output_schema:",
        "    type: object",
        "    additionalProperties: false",
        f"    required: {flow(inferred.schema['required'])}",
        "    properties:",
    ]
    for field_name, spec in inferred.schema["properties"].items():
        lines.append(f"      {flow(field_name)}:{note(f'task.output_schema.properties.{field_name}')}")
        if "enum" in spec:
            counts = inferred.counts.get(field_name, Counter())
            lines.append("        enum:")
            for value in spec["enum"]:
                n = counts.get(_hashable(value), 0)
                rare = "  (rare: a typo or a real class? check it)" if n < 5 and n < RARE * inferred.rows else ""
                lines.append(f"          - {flow(value)}  # {n:,} rows{rare}")
        else:
            for key, value in spec.items():
                lines.append(f"        {key}: {flow(value)}")
    if inferred.label_field is not None:
        lines.append(f"  label_field: {flow(inferred.label_field)}{note('task.label_field')}")
    lines += ["", "data:", "  sources:", f"    - path: {flow(data_path)}"]
    if inferred.output_columns:
        lines.append(f"      output_columns: {flow(inferred.output_columns)}{note('data.sources[0].output_columns')}")
    elif inferred.output_field:
        lines.append(f"      output_field: {flow(inferred.output_field)}{note('data.sources[0].output_field')}")
    if inferred.id_field:
        lines.append(f"      id_field: {flow(inferred.id_field)}{note('data.sources[0].id_field')}")
    lines += [
        "",
        "eval:",
        "  gates:",
        "    - schema_validity >= 0.95",
    ]
    if inferred.label_field:
        lines.append("    - label_accuracy >= base + 0.2")
    return "\n".join(lines) + "\n"
