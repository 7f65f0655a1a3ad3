"""`slmkit init`: starter projects whose comments come from the config's field descriptions."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from slmkit.config import CONFIG_FILE, ProjectConfig
from slmkit.errors import SlmkitError

TEMPLATES = ("classification", "extraction")

# Alert rules every starter project gets (monitor.alerts): answers that break the schema, inputs unlike training.
_EVERY_TASK_RULES: list[dict[str, Any]] = [
    {"name": "answers break the schema", "metric": "schema_valid_rate", "op": "<", "threshold": 0.95, "window": "15m"},
    {"name": "input drift", "metric": "input_drift", "op": ">=", "threshold": 1, "window": "1h", "min_requests": 100},
]

_CLASSIFICATION: dict[str, Any] = {
    "base_model": "smollm2-135m-instruct",
    "task": {
        "name": "ticket-router",
        "description": "Route an IT helpdesk ticket to the team that handles it.",
        "input_fields": ["text"],
        "system_prompt": "You route IT helpdesk tickets to the right team.",
        "output_schema": {
            "type": "object",
            "additionalProperties": False,
            "required": ["team"],
            "properties": {"team": {"enum": ["network", "hardware", "access", "software", "unknown"]}},
        },
        "label_field": "team",
        "refusal": {
            "when": "If the message is not an IT request, or you are unsure, refuse.",
            "output": {"team": "unknown"},
        },
    },
    "data": {
        "sources": [{"path": "data/tickets.jsonl"}],
        "split": {"validation": 0.1, "gold": 0.2, "seed": 13},
    },
    "train": {"method": "lora", "epochs": 2},
    "eval": {"gates": ["schema_validity >= 0.95", "label_accuracy >= 0.8"]},
    "monitor": {
        "alerts": [
            *_EVERY_TASK_RULES,
            {
                "name": "label mix drift",
                "metric": "label_drift",
                "op": ">=",
                "threshold": 1,
                "window": "1h",
                "min_requests": 100,
            },
            {
                "name": "many refusals",
                "metric": "refusal_rate",
                "op": ">",
                "threshold": 0.3,
                "window": "1h",
                "min_requests": 50,
            },
        ]
    },
}

_EXTRACTION: dict[str, Any] = {
    "base_model": "smollm2-135m-instruct",
    "task": {
        "name": "invoice-fields",
        "description": "Extract the supplier, invoice number, total and due date from an invoice email.",
        "input_fields": ["subject", "body"],
        "input_template": "Subject: {subject}\n\n{body}",
        "system_prompt": "You extract fields from supplier invoice emails. Copy values exactly as written.",
        "output_schema": {
            "type": "object",
            "additionalProperties": False,
            "required": ["supplier", "invoice_number", "total", "due_date"],
            "properties": {
                "supplier": {"type": ["string", "null"]},
                "invoice_number": {"type": ["string", "null"]},
                "total": {"type": ["number", "null"]},
                "due_date": {"type": ["string", "null"], "pattern": "^\\d{4}-\\d{2}-\\d{2}$"},
            },
        },
        "refusal": {
            "when": "If the email is not an invoice, answer with every field null.",
            "output": {"supplier": None, "invoice_number": None, "total": None, "due_date": None},
        },
    },
    "data": {
        "sources": [{"path": "data/invoices.jsonl"}],
        "split": {"validation": 0.1, "gold": 0.2, "seed": 13, "stratify": False},
    },
    "train": {"method": "lora", "epochs": 2},
    "eval": {"gates": ["schema_validity >= 0.95", "exact_match >= 0.7"]},
    "monitor": {
        "alerts": [
            *_EVERY_TASK_RULES,
            {
                "name": "less sure of its answers",
                "metric": "confidence_drift",
                "op": ">=",
                "threshold": 1,
                "window": "1h",
                "min_requests": 100,
            },
            {
                "name": "fields left empty",
                "metric": "null_field_rate",
                "op": ">",
                "threshold": 0.6,
                "window": "1h",
                "min_requests": 50,
            },
        ]
    },
}

_SAMPLE_ROWS: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {
    "classification": [
        ({"text": "VPN drops every few minutes when I work from home"}, {"team": "network"}),
        ({"text": "My laptop screen flickers and the hinge is cracked"}, {"team": "hardware"}),
        ({"text": "Please give me read access to the finance share"}, {"team": "access"}),
        ({"text": "Excel crashes when I open the quarterly workbook"}, {"team": "software"}),
        ({"text": "Wi-Fi on floor 3 is extremely slow since this morning"}, {"team": "network"}),
        ({"text": "I forgot my password and my account is locked"}, {"team": "access"}),
        ({"text": "The docking station does not charge my notebook any more"}, {"team": "hardware"}),
        ({"text": "Outlook keeps asking me to sign in again"}, {"team": "software"}),
        ({"text": "What is a good recipe for banana bread?"}, {"team": "unknown"}),
        ({"text": "New starter next Monday needs an account and a laptop"}, {"team": "access"}),
    ],
    "extraction": [
        (
            {
                "subject": "Invoice INV-2291",
                "body": "Hello, attached is invoice INV-2291 from Brightline Supplies "
                "for 1,240.50 EUR, due 2026-02-14.",
            },
            {
                "supplier": "Brightline Supplies",
                "invoice_number": "INV-2291",
                "total": 1240.5,
                "due_date": "2026-02-14",
            },
        ),
        (
            {"subject": "Lunch on Friday?", "body": "Are you free for lunch on Friday?"},
            {"supplier": None, "invoice_number": None, "total": None, "due_date": None},
        ),
        (
            {
                "subject": "Your invoice 7781",
                "body": "Northgate Logistics: invoice 7781, amount due 310.00, payable by 2026-03-01.",
            },
            {
                "supplier": "Northgate Logistics",
                "invoice_number": "7781",
                "total": 310.0,
                "due_date": "2026-03-01",
            },
        ),
    ],
}


def render_config(values: dict[str, Any]) -> str:
    """YAML for `values`, every key commented with its description; unset options shown commented out."""
    lines = [
        "# slmkit project. Check it with `slmkit validate`; run it with `slmkit data build`,",
        "# `slmkit train`, `slmkit eval`, `slmkit release`, `slmkit serve`.",
        "",
    ]
    _render_model(ProjectConfig, values, lines, indent=0)
    return "\n".join(lines) + "\n"


def render_section(path: str, values: dict[str, Any], config_model: type[BaseModel] = ProjectConfig) -> list[str]:
    """A section of slmkit.yaml at a dotted path (`train`, `task.retrieval`), commented like `render_config`."""
    *parents, name = path.split(".")
    lines: list[str] = []
    model: type[BaseModel] | None = config_model
    for depth, parent in enumerate(parents):
        assert model is not None
        lines.append(f"{' ' * 2 * depth}{parent}:")
        model = _section_model(model.model_fields[parent].annotation)
    assert model is not None
    pad = " " * 2 * len(parents)
    field = model.model_fields[name]
    if field.description:
        lines.append(f"{pad}# {field.description}")
    nested = _section_model(field.annotation)
    if nested is None:
        return lines + [pad + line for line in _dump_key(name, values)]
    lines.append(f"{pad}{name}:")
    _render_model(nested, values, lines, indent=len(pad) + 2)
    return lines


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The settings model of a field: `X` or `X | None`."""
    import typing

    for candidate in (annotation, *typing.get_args(annotation)):
        nested = _nested_model(candidate)
        if nested is not None:
            return nested
    return None


def _render_model(model: type[BaseModel], values: dict[str, Any], lines: list[str], indent: int) -> None:
    pad = " " * indent
    for name, field in model.model_fields.items():
        if field.description:
            lines.append(f"{pad}# {field.description}")
        nested = _nested_model(field.annotation)
        if name in values and nested is not None and isinstance(values[name], dict):
            lines.append(f"{pad}{name}:")
            _render_model(nested, values[name], lines, indent + 2)
        elif name in values:
            lines.extend(pad + line for line in _dump_key(name, values[name]))
        elif nested is not None:
            lines.append(f"{pad}# {name}: (defaults; see `slmkit validate --explain`)")
        elif not field.is_required():
            default = field.get_default(call_default_factory=True)
            shown = default if isinstance(default, str) and default else json.dumps(default)
            lines.append(f"{pad}# {name}: {shown}")
        if indent == 0:
            lines.append("")


def _dump_key(name: str, value: Any) -> list[str]:
    """`name: value` with scalars and lists inline, mappings as blocks."""
    if isinstance(value, dict):
        dumped = yaml.safe_dump({name: value}, sort_keys=False, default_flow_style=None, width=100)
        return dumped.rstrip().splitlines()
    if value and isinstance(value, list) and all(isinstance(item, dict) for item in value):
        # A list of records (alert rules): one line each, keys in the order written.
        items = [yaml.safe_dump(item, sort_keys=False, default_flow_style=True, width=10_000).strip() for item in value]
        return [f"{name}:", *(f"  - {item}" for item in items)]
    inline = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()
    inline = inline.removesuffix("...").strip()
    return [f"{name}: {inline}"]


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def write_template(kind: str, directory: Path) -> list[Path]:
    """Write slmkit.yaml and a few sample rows into `directory`; refuses to overwrite a project."""
    if kind not in TEMPLATES:
        raise SlmkitError(f"unknown template '{kind}'", hint=f"choose one of: {', '.join(TEMPLATES)}")
    config_path = directory / CONFIG_FILE
    if config_path.exists():
        raise SlmkitError(f"{config_path} already exists; not overwriting it", hint="choose an empty directory")
    values = _CLASSIFICATION if kind == "classification" else _EXTRACTION
    data_path = directory / values["data"]["sources"][0]["path"]
    data_path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{**fields, "output": output} for fields, output in _SAMPLE_ROWS[kind]]
    data_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    config_path.write_text(render_config(values), encoding="utf-8")
    return [config_path, data_path]
