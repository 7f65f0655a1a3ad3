"""Shared fixtures: the real SmolLM2 (resolved once), a tiny random model with its tokenizer,
and a small copy of the example project pointed at the tiny model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "support-tickets"
# The public datasets beside the repository (../shared/data), or where SLMKIT_SHARED_DATA says;
# tests that need them skip, saying so, on a machine without them.
SHARED_DATA = Path(os.environ.get("SLMKIT_SHARED_DATA") or REPO.parent / "shared" / "data")


@pytest.fixture(scope="session")
def smollm2_ref():
    """The real SmolLM2-135M-Instruct, converted from its GGUF once into the slmkit cache."""
    from slmkit.models import resolve_base_model

    return resolve_base_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smollm2_ref) -> Path:
    """A 2-layer, hidden-16 Llama with SmolLM2's tokenizer and chat template."""
    from slmkit.models.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"), smollm2_ref.path)


def write_project(root: Path, base_model: str | Path, *, rows: int | None = 120, overrides: dict | None = None) -> Path:
    """Copy the example project into `root`, keeping the first `rows` JSONL lines, on another base model.

    Semantic dedup and input embeddings (monitor.embeddings, with the input drift rules that need
    them) are off unless `overrides` turns them on.
    """
    root.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((EXAMPLE / "slmkit.yaml").read_text())
    config["base_model"] = str(base_model)
    # Semantic dedup loads MiniLM (seconds per build): the tests that are about it turn it on.
    config["data"]["dedup"]["semantic"]["enabled"] = False
    # Serving would load MiniLM to embed each input: the monitoring tests that are about it turn it on.
    monitor = config.setdefault("monitor", {})
    monitor["embeddings"] = False
    monitor["alerts"] = [r for r in monitor.get("alerts", []) if not r["metric"].startswith("input_drift")]
    (root / "data").mkdir(exist_ok=True)
    lines = (EXAMPLE / "data" / "tickets.jsonl").read_bytes().splitlines(keepends=True)
    (root / "data" / "tickets.jsonl").write_bytes(b"".join(lines[:rows] if rows else lines))
    shutil.copy2(EXAMPLE / "data" / "tickets_extra.csv", root / "data" / "tickets_extra.csv")
    for dotted, value in (overrides or {}).items():
        target = config
        *parents, last = dotted.split(".")
        for key in parents:
            target = target.setdefault(key, {})
        target[last] = value
    (root / "slmkit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


@pytest.fixture
def tiny_project(tmp_path, tiny_model_dir) -> Path:
    """The example project (first 120 tickets + the CSV) on the tiny model, with fast settings."""
    return write_project(
        tmp_path / "project",
        tiny_model_dir,
        overrides={
            "train.max_steps": 6,
            "train.batch_size": 4,
            "train.eval_every": 3,
            "eval.max_items": 12,
            "eval.max_new_tokens": 24,
            "eval.gates": ["schema_validity >= 0.0"],
        },
    )


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
