"""Turn one readable record into a normalized, schema-valid `Row`, or say why it cannot be one.

Checks run in the order a person would fix them: the input fields, then the output (present,
JSON, schema), then the rendered input (not empty, not over-long). The first failure is the
reason; fixing it and rebuilding shows the next one, if any.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from slmkit.config import SourceConfig
from slmkit.data.dataset import Example
from slmkit.data.ingest import RawRow
from slmkit.data.normalize import (
    NormalizeError,
    OutputError,
    dedup_key,
    json_type,
    normalize_field,
    normalize_text,
    parse_output,
)
from slmkit.data.rows import Reject, Row
from slmkit.task import Task

MAX_SCHEMA_ERRORS = 3


def check_record(
    task: Task,
    raw: RawRow,
    source: SourceConfig,
    max_input_chars: int,
    normalizers: Mapping[str, str] | None = None,
) -> Row | Reject:
    """The row ready for dedup and the split, or the reject that explains what to fix.

    `normalizers` (data.normalize: output field -> normalizer) run before the schema check, so a
    date written 14.03.2026 is stored, and validated, as 2026-03-14.
    """
    record = raw.record
    row_id = _row_id(record, source.id_field, raw.source)

    def reject(kind: str, reason: str) -> Reject:
        return Reject(source=raw.source, id=row_id, kind=kind, reason=reason, stage="validate", raw=record)

    fields: dict[str, str] = {}
    for name in task.cfg.input_fields:
        if name not in record:
            column = source.columns.get(name)
            if column and column != name:
                return reject(
                    "missing_field",
                    f"missing column '{column}' (mapped to task input field '{name}' by data.sources[].columns)",
                )
            return reject("missing_field", f"missing input field '{name}' (task.input_fields: {task.cfg.input_fields})")
        value = record[name]
        if value is None:
            value = ""
        if not isinstance(value, str):
            return reject("field_type", f"input field '{name}' is {_a(json_type(value))} ({_short(value)}), not text")
        fields[name] = normalize_text(value)

    out = source.output_field
    if out not in record:
        return reject("missing_field", f"missing output field '{out}' (the answer to learn)")
    if record[out] is None or (isinstance(record[out], str) and not record[out].strip()):
        return reject("missing_field", f"output field '{out}' is empty (the answer to learn)")
    try:
        parsed = parse_output(record[out])
    except OutputError as exc:
        return reject("output_json", f"output field '{out}' is {exc}")
    for name, kind in (normalizers or {}).items():
        if name in parsed:
            try:
                parsed[name] = normalize_field(kind, parsed[name])
            except NormalizeError as exc:
                return reject("normalize", f"{out}.{name}: {exc} (data.normalize.{name}: {kind})")
    output = task.canonical(parsed)
    problems = task.validate(output)
    if problems:
        shown = "; ".join(_at_output(out, p) for p in problems[:MAX_SCHEMA_ERRORS])
        more = f" (and {len(problems) - MAX_SCHEMA_ERRORS} more)" if len(problems) > MAX_SCHEMA_ERRORS else ""
        return reject("schema", shown + more)

    text = task.render_input(fields)
    if not text or not any(fields.values()):
        return reject("empty", f"the input is empty: {', '.join(fields)} {'is' if len(fields) == 1 else 'are'} blank")
    if len(text) > max_input_chars:
        return reject(
            "too_long",
            f"the input is {len(text)} characters, over data.max_input_chars={max_input_chars}; shorten it "
            "or raise the limit",
        )
    tags_cell = record.get(source.tags_field) if source.tags_field else None
    tags = _tags(tags_cell)
    if tags is None:
        return reject(
            "field_type",
            f"tags field '{source.tags_field}' is {_short(tags_cell)}: write a list of short "
            'names (letters, digits, . _ : -), e.g. ["edge-case"], or one comma-separated text',
        )
    label = output.get(task.cfg.label_field) if task.cfg.label_field else None
    history = tuple({"role": turn["role"], "content": _turn_text(task, turn)} for turn in raw.history)
    example = Example(row_id, raw.source, text, fields, output, label, history, tags)
    return Row(example, key=dedup_key(example.dedup_text))


_TAG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,39}$")


def _tags(value: Any) -> tuple[str, ...] | None:
    """A row's tags: a list of short names, or one comma-separated text; None when not that.

    Names only (no spaces, no @), so a tags column cannot carry free text past the PII stage.
    """
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        return None
    tags = tuple(dict.fromkeys(t.strip() for t in items if t.strip()))
    return tags if all(_TAG.match(t) for t in tags) else None


def _turn_text(task: Task, turn: Mapping[str, str]) -> str:
    """An earlier turn as the prompt will show it: an earlier answer that is a JSON object in the
    task's exact output format (as the model writes it, and as serving will send it back)."""
    if turn["role"] == "assistant":
        try:
            return task.format_output(parse_output(turn["content"]))
        except OutputError:
            pass
    return normalize_text(turn["content"])


def _row_id(record: dict[str, Any], id_field: str | None, where: str) -> str:
    """The record's id when the source names an id field and the row has one; else file:line."""
    value = record.get(id_field) if id_field else None
    if value is None or (isinstance(value, str) and not value.strip()):
        return where
    return value.strip() if isinstance(value, str) else json.dumps(value)


def _at_output(output_field: str, problem: str) -> str:
    # Task.validate says "category: ..." or "(root): ..."; name the output field so the
    # message reads "output.category: 'refund' is not one of [...]".
    path, _, message = problem.partition(": ")
    return f"{output_field}: {message}" if path == "(root)" else f"{output_field}.{path}: {message}"


def _short(value: Any, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"
