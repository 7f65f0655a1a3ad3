"""Read a built dataset version back, refusing a gold set that is not the locked one.

Train and eval read data only through `open_dataset`, so no stage can train or grade on a gold
set that was edited, or that a later `--new-gold` build replaced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmkit.config import ProjectConfig
from slmkit.errors import GoldSetChanged, StageError
from slmkit.registry import Registry, hash_file

SPLITS = ("train", "validation", "gold")
NEW_GOLD_HINT = (
    "rebuild with `slmkit data build --new-gold` to draw and lock a new gold set, knowing that earlier "
    "eval results are no longer comparable"
)


@dataclass(frozen=True)
class Example:
    """One labelled example of a split: the rendered input, its fields and the canonical output.

    `history` is the conversation before the input (examples from chat logs): user and
    assistant turns as {"role", "content"}, oldest first, placed between the system prompt and
    the input when the prompt is rendered. Split files carry it only when it is not empty.
    `tags` are the row's labels from its source's `tags_field` (e.g. "edge-case"): `slmkit review
    export` lists tagged gold rows for a person to check. Also written only when not empty.
    `context` is what a task with `retrieval` was shown with the input: chunks as
    {"ref", "id", "document", "heading", "span", "text"} (see slmkit.retrieval.context); written
    only when the task retrieves. `task.model_input(input, context)` renders them together.
    """

    id: str
    source: str
    input: str
    fields: dict[str, Any]
    output: dict[str, Any]
    label: Any
    history: tuple[dict[str, str], ...] = ()
    tags: tuple[str, ...] = ()
    context: tuple[dict[str, Any], ...] | None = None

    @property
    def prompt_context(self) -> list[dict[str, Any]] | None:
        return list(self.context) if self.context is not None else None

    def as_dict(self) -> dict[str, Any]:
        data = {
            "id": self.id,
            "source": self.source,
            "input": self.input,
            "fields": self.fields,
            "output": self.output,
            "label": self.label,
        }
        if self.history:
            data["history"] = list(self.history)
        if self.tags:
            data["tags"] = list(self.tags)
        if self.context is not None:
            data["context"] = list(self.context)
        return data

    @property
    def dedup_text(self) -> str:
        """What makes two examples the same question: the earlier turns, if any, then the input.

        Equal to `input` without history, so single-turn keys are unchanged; with history, the
        same last message in two different conversations is two different questions.
        """
        if not self.history:
            return self.input
        turns = [f"{turn['role']}: {turn['content']}" for turn in self.history]
        return "\n".join([*turns, f"user: {self.input}"])


@dataclass(frozen=True)
class Dataset:
    """A dataset version in the store; `manifest` and `report` are its manifest.json and report.json."""

    version: str
    digest: str
    path: Path
    gold_hash: str
    manifest: dict[str, Any]

    def examples(self, split: str) -> list[Example]:
        """The rows of "train", "validation" or "gold", in file order."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; one of {', '.join(SPLITS)}")
        return read_examples(self.path / f"{split}.jsonl")

    def rejects(self) -> list[dict[str, Any]]:
        """rejects.jsonl: every row not used, with its source line, kind and reason."""
        with (self.path / "rejects.jsonl").open(encoding="utf-8") as fh:
            return [json.loads(line) for line in fh if line.strip()]

    @property
    def report(self) -> dict[str, Any]:
        return json.loads((self.path / "report.json").read_text(encoding="utf-8"))


def read_examples(path: Path) -> list[Example]:
    """Examples from a split file (one JSON object per line)."""
    examples = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                data = json.loads(line)
                examples.append(
                    Example(
                        data["id"],
                        data["source"],
                        data["input"],
                        data["fields"],
                        data["output"],
                        data["label"],
                        tuple(data.get("history", ())),
                        tuple(data.get("tags", ())),
                        tuple(data["context"]) if "context" in data else None,
                    )
                )
    return examples


def verify_gold_file(path: Path, expected_hash: str) -> None:
    """Raise GoldSetChanged unless the file's sha256 is `expected_hash` (the locked gold set)."""
    actual = hash_file(path)
    if actual != expected_hash:
        raise GoldSetChanged(
            f"the gold set {path} was changed after it was locked: its sha256 is {actual[:12]}..., "
            f"the locked gold set's is {expected_hash[:12]}...",
            hint=NEW_GOLD_HINT,
        )


def open_dataset(config: ProjectConfig, registry: Registry, version: str | None = None) -> Dataset:
    """A dataset version (the task's latest by default), its gold set checked against the lock."""
    task = config.task.name
    record = registry.get_dataset(version, task=task)
    if record.task != task:
        raise StageError(
            f"dataset {record.version} was built for task '{record.task}', not '{task}'",
            hint=f"run `slmkit data build` for {task}, or pass one of its dataset versions",
        )
    path = registry.store.path(record.digest)
    manifest_path = path / "manifest.json"
    if not manifest_path.exists():
        raise StageError(
            f"dataset {record.version} in {path} has no manifest.json, so it is incomplete",
            hint="run `slmkit data build` again",
        )
    lock = registry.gold_lock(task)
    if lock is not None and lock.gold_hash != record.gold_hash:
        raise GoldSetChanged(
            f"dataset {record.version} holds gold set {record.gold_hash[:12]}..., but the locked gold set "
            f"of {task} is {lock.gold_hash[:12]}... (from {lock.dataset_version}, locked {lock.locked_at})",
            hint="run `slmkit data build` to rebuild on the locked gold set, or " + NEW_GOLD_HINT,
        )
    verify_gold_file(path / "gold.jsonl", lock.gold_hash if lock is not None else record.gold_hash)
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    return Dataset(record.version, record.digest, path, record.gold_hash, manifest)
