"""The locked gold set: read it back for a rebuild, and keep its inputs out of training.

The gold set is what every model of the task is graded on, so a rebuild copies it byte for byte
instead of drawing it again; the build (see `build` and `dedup`) counts a source row that is a
gold row as that gold row, and keeps copies of gold rows out of training.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from slmkit.data.dataset import NEW_GOLD_HINT, Example, read_examples, verify_gold_file
from slmkit.errors import RegistryError, StageError
from slmkit.registry import GoldLock, Registry
from slmkit.task import Task


@dataclass(frozen=True)
class LockedGold:
    """The locked gold.jsonl in the store and its examples."""

    dataset_version: str
    path: Path
    gold_hash: str
    examples: list[Example]


def load_locked_gold(registry: Registry, lock: GoldLock, task: Task) -> LockedGold:
    """The locked gold set, checked: present, unaltered, and still fitting the task spec."""
    where = f"the locked gold set of {task.name} comes from dataset {lock.dataset_version}"
    try:
        record = registry.get_dataset(lock.dataset_version)
    except RegistryError:
        raise StageError(f"{where}, which the registry does not know", hint=NEW_GOLD_HINT) from None
    missing = StageError(f"{where}, whose files are missing from the store ({registry.store.root})", hint=NEW_GOLD_HINT)
    if not registry.store.exists(record.digest):
        raise missing
    path = registry.store.path(record.digest) / "gold.jsonl"
    if not path.is_file():
        raise missing
    verify_gold_file(path, lock.gold_hash)
    examples = read_examples(path)
    for example in examples:
        problems = task.validate(example.output)
        if problems:
            raise StageError(
                f"{where}, and its row {example.source} no longer matches the output schema ({problems[0]})",
                hint="the output schema changed since the gold set was locked; " + NEW_GOLD_HINT,
            )
        if task.render_input(example.fields) != example.input:
            raise StageError(
                f"{where}, and its inputs no longer render the same (task.input_fields or "
                "task.input_template changed since it was locked)",
                hint=NEW_GOLD_HINT,
            )
    return LockedGold(lock.dataset_version, path, lock.gold_hash, examples)
