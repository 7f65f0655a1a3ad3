"""Small projects for data tests: the example's task spec over data files written by the test."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slmkit.config import ProjectConfig, load_config
from slmkit.data import DataBuildResult, run_data_build
from tests.conftest import write_project

BASE_MODEL = "smollm2-135m-instruct"  # never loaded: the data stage needs only the task spec
CATEGORIES = ["billing", "shipping", "returns", "technical", "account"]


def ticket(n: int, *, category: str | None = None, body: str | None = None, **output: Any) -> dict[str, Any]:
    """A valid ticket row with a distinct body; `output` overrides answer fields."""
    answer = {
        "category": category or CATEGORIES[n % len(CATEGORIES)],
        "priority": "normal",
        "order_id": f"ORD-{100000 + n}",
        "product": None,
    }
    answer.update(output)
    return {
        "ticket_id": f"T-{n}",
        "subject": f"Ticket {n}",
        "body": body if body is not None else f"Question number {n} about order ORD-{100000 + n}.",
        "output": answer,
    }


def jsonl(rows: list[Any]) -> bytes:
    """JSONL bytes: dicts are dumped, str and bytes are written as they are (one line each)."""
    lines = []
    for row in rows:
        if isinstance(row, bytes):
            lines.append(row)
        elif isinstance(row, str):
            lines.append(row.encode())
        else:
            lines.append(json.dumps(row).encode())
    return b"".join(line + b"\n" for line in lines)


def make_project(root: Path, files: dict[str, bytes], *, overrides: dict[str, Any] | None = None) -> Path:
    """The example project at `root`, reading only `files` (name -> bytes, under data/)."""
    sources = [{"path": f"data/{name}", "id_field": "ticket_id"} for name in files]
    write_project(root, BASE_MODEL, rows=1, overrides={"data.sources": sources, **(overrides or {})})
    for name, content in files.items():
        (root / "data" / name).write_bytes(content)
    return root


def build(root: Path, **kwargs: Any) -> DataBuildResult:
    return run_data_build(load_config(root), **kwargs)


def config(root: Path) -> ProjectConfig:
    return load_config(root)
