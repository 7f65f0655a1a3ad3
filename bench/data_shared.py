"""`slmkit data build` on the public datasets in ../shared/data: SNIPS, IT tickets, Presidio PII.

Each dataset gets a small project (written to a temp directory, pointing at the files where
they are) and a full build with PII removal, exact, near and semantic dedup. The script prints
what the data card of each shows: rows in and out, rejects by reason, personal data replaced,
duplicate and conflict clusters, and where the card is. These are other people's exports with
their own quirks, so they show how the builder behaves on data it was not written for.

    .venv/bin/python bench/data_shared.py                    # all three, cards kept under /tmp
    .venv/bin/python bench/data_shared.py snips --keep DIR   # one, cards kept in DIR
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SLMKIT_SHARED_DATA") or REPO.parent / "shared" / "data")

PII = {"entities": ["EMAIL", "PHONE", "CARD", "IBAN", "SSN", "IP", "URL", "SECRET", "ADDRESS", "NAME"], "ner": "names"}


def _snips() -> dict[str, Any]:
    labels = json.loads((SHARED / "snips" / "labels.json").read_text())
    return {
        "task": {
            "name": "snips",
            "input_fields": ["input"],
            "system_prompt": "Parse the voice-assistant request into its intent and slots.",
            "output_schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["intent", "slots"],
                "properties": {
                    "intent": {"enum": labels["intents"]},
                    "slots": {"type": "object", "additionalProperties": {"type": ["string", "array"]}},
                },
            },
            "label_field": "intent",
        },
        "source": SHARED / "snips" / "train.jsonl",
    }


def _it_tickets() -> dict[str, Any]:
    labels = json.loads((SHARED / "it_tickets" / "labels.json").read_text())
    return {
        "task": {
            "name": "it-tickets",
            "input_fields": ["input"],
            "system_prompt": "Route the IT service-desk ticket to the queue that handles it.",
            "output_schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["queue"],
                "properties": {"queue": {"enum": labels}},
            },
            "label_field": "queue",
        },
        "source": SHARED / "it_tickets" / "train.jsonl",
    }


def _presidio() -> dict[str, Any]:
    return {
        "task": {
            "name": "presidio-pii",
            "input_fields": ["input"],
            "system_prompt": "List the personal data in the text.",
            "output_schema": {
                "type": "object",
                "required": ["entities"],
                "properties": {
                    "entities": {
                        "type": "array",
                        "items": {"type": "object", "required": ["type", "value"]},
                    }
                },
            },
        },
        "source": SHARED / "presidio_pii" / "train.jsonl",
        "stratify": False,
    }


DATASETS = {"snips": _snips, "it_tickets": _it_tickets, "presidio": _presidio}


def build(name: str, keep: Path) -> dict[str, Any]:
    from slmkit.config import load_config
    from slmkit.data import run_data_build

    spec = DATASETS[name]()
    root = keep / name
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "base_model": "smollm2-135m-instruct",
        "task": spec["task"],
        "data": {
            "sources": [{"path": str(spec["source"])}],
            "split": {"validation": 0.1, "gold": 0.15, "seed": 13, "stratify": spec.get("stratify", True)},
            "pii": PII,
            "dedup": {"near": {"threshold": 0.7}, "semantic": {"enabled": True, "threshold": 0.95}},
        },
    }
    (root / "slmkit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    began = time.perf_counter()
    result = run_data_build(load_config(root))
    wall = time.perf_counter() - began
    return {"result": result, "wall": wall}


def main() -> None:
    args = sys.argv[1:]
    keep = Path(args[args.index("--keep") + 1]) if "--keep" in args else Path(tempfile.mkdtemp(prefix="slmkit-shared-"))
    names = [a for a in args if a in DATASETS] or list(DATASETS)
    if not SHARED.is_dir():
        raise SystemExit(f"no shared datasets at {SHARED}; set SLMKIT_SHARED_DATA")
    for name in names:
        done = build(name, keep)
        result, wall = done["result"], done["wall"]
        print(f"== {name} ({wall:.1f}s)")
        for line in result.summary_lines():
            print("  " + line)
        conflicts = result.report.get("conflicts", {}).get("examples", [])[:2]
        for cluster in conflicts:
            rows = "; ".join(f"{r['input'][:60]!r} -> {json.dumps(r['output'])[:60]}" for r in cluster["rows"][:2])
            print(f"  conflict ({cluster['kind']}): {rows}")


if __name__ == "__main__":
    main()
