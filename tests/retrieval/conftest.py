"""A small policy Q&A project for the retrieval tests: public, staff-only and finance-only documents."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from slmkit.config import ProjectConfig, load_config

RETURNS_MD = """\
---
title: Returns policy
---
# Returns

You can return any item within 30 days of delivery. Items must be unused and in their original box.

## Refunds

Refunds reach your card within 5 working days after the parcel arrives at our warehouse.
"""

SHIPPING_MD = """\
# Shipping

Standard shipping takes 3 to 5 working days. Orders over 50 euros ship free.

## Express

Express delivery arrives the next working day when ordered before 14:00.
"""

# Restricted: words no public document uses, so a leak is easy to spot.
STAFF_MD = """\
---
title: Staff pricing handbook
groups: [staff]
---
# Staff discount

Employees get the ZEBRAQUILL discount: 25 percent off every order, capped at 800 euros a year.
"""

FINANCE_TXT = "Refund limits for finance approvers: refunds above 2500 euros need the MARLINFOX sign-off.\n"

QUESTIONS = [
    ("How many days do I have to return an item?", "30 days"),
    ("When does my refund reach my card?", "5 working days"),
    ("How long does standard shipping take?", "3 to 5 working days"),
    ("When do orders ship free?", "over 50 euros"),
    ("When does express delivery arrive?", "the next working day"),
    ("What discount do employees get?", "25 percent"),
]
REFUSAL = {"answer": "not in the documents"}
PREFIXES = ("", "Hi! ", "Quick question: ", "Please tell me: ")  # four distinct rows per question


def write_policy_project(root: Path, base_model: str | Path, overrides: dict[str, Any] | None = None) -> ProjectConfig:
    """The project on disk: four documents (two restricted), question rows, a retrieval task."""
    (root / "docs" / "internal").mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    (root / "docs" / "returns.md").write_text(RETURNS_MD)
    (root / "docs" / "shipping.md").write_text(SHIPPING_MD)
    (root / "docs" / "internal" / "staff-pricing.md").write_text(STAFF_MD)
    (root / "docs" / "internal" / "refund-limits.txt").write_text(FINANCE_TXT)
    rows = [{"question": p + q, "output": {"answer": a}} for p in PREFIXES for q, a in QUESTIONS]
    rows += [{"question": f"Can you recommend a pizza place near station {n}?", "output": REFUSAL} for n in range(6)]
    (root / "data" / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    config: dict[str, Any] = {
        "base_model": str(base_model),
        "task": {
            "name": "policy-qa",
            "input_fields": ["question"],
            "system_prompt": "You answer questions about the shop's policies.",
            "output_schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["answer"],
                "properties": {"answer": {"type": "string", "maxLength": 60}},
            },
            "refusal": {"when": "If the documents do not hold the answer, refuse.", "output": REFUSAL},
            "retrieval": {"top_k": 2, "answer_field": "answer", "min_similarity": 0.3},
        },
        "data": {
            "sources": [{"path": "data/questions.jsonl"}],
            "documents": {
                "paths": ["docs/**/*.md", "docs/**/*.txt"],
                "chunk_chars": 300,
                "overlap_chars": 40,
                "access": [{"paths": ["docs/internal/refund-limits.txt"], "groups": ["finance"]}],
            },
            "split": {"validation": 0.1, "gold": 0.2, "stratify": False},
            "dedup": {"near": {"enabled": False}},
        },
        "train": {"max_steps": 4, "batch_size": 4, "eval_every": 2},
        "eval": {"max_items": 8, "max_new_tokens": 40, "gates": ["schema_validity >= 0.0"]},
        "serve": {"max_new_tokens": 40, "max_retries": 0},
    }
    for dotted, value in (overrides or {}).items():
        target = config
        *parents, last = dotted.split(".")
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value
    (root / "slmkit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return load_config(root)


@pytest.fixture(scope="session")
def embedder():
    """The real all-MiniLM-L6-v2, loaded once for the session."""
    from slmkit.data.semantic import Embedder

    return Embedder(batch_size=32)
