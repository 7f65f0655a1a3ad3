"""`slmkit data build`: sources -> normalized, validated, deduplicated, split dataset version.

Read and check every row -> drop duplicates and conflicts -> keep the locked gold set (or draw
one) -> split -> write the files, manifest last -> store and register -> lock the gold set.

Every input row ends in exactly one of train / validation / gold / rejects, and the count is
checked. The files hold no timestamps, so identical sources and config give an identical
dataset version; when it was built lives in the registry record.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from slmkit import __version__
from slmkit.config import ProjectConfig
from slmkit.data.dedup import drop_duplicates
from slmkit.data.gold import load_locked_gold, separate_gold
from slmkit.data.ingest import SourceStats, read_source
from slmkit.data.report import DataBuildResult, build_counts, check_accounting, report_json
from slmkit.data.rows import Reject, RejectLog, Row, write_jsonl
from slmkit.data.split import split_rows
from slmkit.data.validate import check_record
from slmkit.errors import StageError
from slmkit.registry import Registry, hash_file
from slmkit.task import Task

DATASET_FORMAT = 1


def run_data_build(
    config: ProjectConfig, *, new_gold: bool = False, registry: Registry | None = None
) -> DataBuildResult:
    """Build and register a dataset version; the result says where it is and where every row went.

    The first build of a task draws the gold set and locks it. Later builds copy the locked
    gold.jsonl byte for byte and keep its inputs out of train and validation. `new_gold=True`
    draws a different gold set and locks it instead (the registry's audit log records it).
    """
    registry = registry or Registry(config.state_dir)
    task = Task.from_config(config)
    split = config.data.split
    lock = registry.gold_lock(task.name)
    # Read the locked gold set before the data: if it is gone or altered, say so at once.
    locked = load_locked_gold(registry, lock, task) if lock is not None and not new_gold else None

    with tempfile.TemporaryDirectory(dir=registry.home, prefix="data-build-") as tmp:
        out = Path(tmp) / "dataset"
        out.mkdir()
        with RejectLog(out / "rejects.jsonl") as rejects:
            rows, sources = _read_and_check(config, task, rejects)
            rows, duplicates = drop_duplicates(rows)
            rejects.extend(duplicates)
            gold_indices = None
            if locked is not None:
                rows, gold_indices, overlaps = separate_gold(rows, locked)
                rejects.extend(overlaps)

        parts = split_rows(
            rows,
            validation=split.validation,
            gold=split.gold,
            seed=split.seed,
            stratify=split.stratify and task.cfg.label_field is not None,
            locked_gold=gold_indices,
            # A new draw must differ from the set it replaces, yet stay reproducible.
            gold_salt=lock.gold_hash if lock is not None and new_gold else "",
        )
        train = [rows[i] for i in parts.train]
        validation = [rows[i] for i in parts.validation]
        write_jsonl(out / "train.jsonl", (row.example.as_dict() for row in train))
        write_jsonl(out / "validation.jsonl", (row.example.as_dict() for row in validation))
        if locked is not None:
            shutil.copyfile(locked.path, out / "gold.jsonl")
            gold = locked.examples
        else:
            gold = [rows[i].example for i in parts.gold]
            write_jsonl(out / "gold.jsonl", (example.as_dict() for example in gold))
        gold_hash = hash_file(out / "gold.jsonl")

        counts = build_counts(
            sources=sources,
            rejects=rejects,
            train=train,
            validation=validation,
            gold=gold,
            gold_from_sources=len(parts.gold),
            labels=task.labels,
        )
        check_accounting(counts)
        _require_rows(counts, rejects)
        _write_json(out / "report.json", report_json(counts, sources))
        # Written last: a dataset directory with a manifest is complete.
        _write_json(out / "manifest.json", _manifest(config, task, sources, out, gold_hash, counts))
        digest = registry.store.put_dir(out)

    version = f"ds-{digest[:12]}"
    meta = {
        "config_hash": _config_hash(config),
        "sources": [{"path": s.path, "sha256": s.sha256} for s in sources],
        "gold": {
            "reused": locked is not None,
            "locked_from": locked.dataset_version if locked else None,
            "new_gold": new_gold,
            "salt": lock.gold_hash if lock is not None and new_gold else "",
        },
    }
    registry.record_dataset(version, task.name, digest, gold_hash, counts, meta)
    if locked is None:
        registry.lock_gold(
            task.name,
            gold_hash,
            version,
            replace=lock is not None,
            reason=f"slmkit data build --new-gold: replaced by the gold set of {version}",
        )
    return DataBuildResult(
        version=version,
        digest=digest,
        path=registry.store.path(digest),
        counts=counts,
        gold_hash=gold_hash,
        gold_reused=locked is not None,
    )


def _read_and_check(config: ProjectConfig, task: Task, rejects: RejectLog) -> tuple[list[Row], list[SourceStats]]:
    """Valid rows of every source in source order; everything else goes to `rejects`."""
    rows: list[Row] = []
    sources: list[SourceStats] = []
    for source in config.data.sources:
        stats = SourceStats(source.path)
        for item in read_source(config, source, stats):
            checked = (
                item if isinstance(item, Reject) else check_record(task, item, source, config.data.max_input_chars)
            )
            if isinstance(checked, Reject):
                rejects.add(checked)
            else:
                rows.append(checked)
        sources.append(stats)
    return rows, sources


def _require_rows(counts: dict[str, Any], rejects: RejectLog) -> None:
    """A dataset without training or gold rows is useless: explain why there are none."""
    if counts["train"] and counts["gold"]:
        return
    missing = "training" if not counts["train"] else "gold"
    reasons = ", ".join(f"{n} {kind}" for kind, n in counts["rejected_by_reason"].items()) or "none"
    examples = "; ".join(f"{r.source}: {r.reason}" for r in list(rejects.first_by_kind.values())[:3])
    raise StageError(
        f"no {missing} rows: {counts['input']} rows in, {counts['kept']} kept, {counts['rejected']} rejected "
        f"({reasons})" + (f"; e.g. {examples}" if examples else ""),
        hint="fix the rows (or data.sources / task.input_fields in slmkit.yaml) and build again; "
        "the gold set needs at least two valid rows",
    )


def _manifest(
    config: ProjectConfig, task: Task, sources: list[SourceStats], out: Path, gold_hash: str, counts: dict[str, Any]
) -> dict[str, Any]:
    resolved = config.resolved()
    return {
        "kind": "slmkit.dataset",
        "format": DATASET_FORMAT,
        "task": task.name,
        "task_hash": config.task_hash(),
        "config_hash": _config_hash(config),
        "config": {"task": resolved["task"], "data": resolved["data"]},
        "seed": config.data.split.seed,
        "sources": [s.as_dict() for s in sources],
        "files": {
            path.name: {"sha256": hash_file(path), "bytes": path.stat().st_size} for path in sorted(out.iterdir())
        },
        "gold_hash": gold_hash,
        "counts": counts,
        "slmkit_version": __version__,
    }


def _config_hash(config: ProjectConfig) -> str:
    """sha256 of the resolved task and data sections: what decides the rows of a dataset."""
    resolved = config.resolved()
    return hashlib.sha256(
        json.dumps({"task": resolved["task"], "data": resolved["data"]}, sort_keys=True).encode()
    ).hexdigest()


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
