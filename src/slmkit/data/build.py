"""`slmkit data build`: sources -> clean, private, deduplicated, split dataset version.

One streaming pass reads every source row, checks it against the task, replaces personal data
(before anything is written), counts its tokens with the base model's tokenizer and writes it
to a spool, keeping only a few numbers per row in memory (`passes`, `spool`). Then, on those
numbers: exact duplicates and conflicts, near duplicates (MinHash LSH), semantic duplicates
(MiniLM embeddings), the locked gold set kept out of training (`dedup`), the split. A second
pass copies each spooled row to its split file or to rejects.jsonl with its reason. Last: the
corpus of plain documents, a canary check over every written file, report.json and
report.html (the data card), the manifest.

Every input row ends in exactly one of train / validation / gold / rejects, and the count is
checked. The files hold no timestamps, so identical sources and config give an identical
dataset version; when it was built lives in the registry record.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slmkit import __version__
from slmkit.config import REVIEWED_SOURCE, ProjectConfig, SourceConfig
from slmkit.data.dedup import deduplicate
from slmkit.data.documents import write_corpus
from slmkit.data.gold import load_locked_gold
from slmkit.data.ingest import SourceStats
from slmkit.data.passes import BuildState
from slmkit.data.pii import check_canaries
from slmkit.data.report import DataBuildResult, build_counts, check_accounting, report_json
from slmkit.data.rows import RejectLog
from slmkit.errors import StageError
from slmkit.registry import Registry, hash_file
from slmkit.task import Task

DATASET_FORMAT = 2


def run_data_build(
    config: ProjectConfig, *, new_gold: bool = False, registry: Registry | None = None
) -> DataBuildResult:
    """Build and register a dataset version; the result says where it is and where every row went.

    The first build of a task draws the gold set and locks it. Later builds copy the locked
    gold.jsonl byte for byte and keep its inputs, and near or semantic copies of them, out of
    train and validation. `new_gold=True` draws a different gold set and locks it instead (the
    registry's audit log records it).
    """
    registry = registry or Registry(config.state_dir)
    config = with_reviewed_source(config)
    task = Task.from_config(config)
    lock = registry.gold_lock(task.name)
    # Read the locked gold set before the data: if it is gone or altered, say so at once.
    locked = load_locked_gold(registry, lock, task) if lock is not None and not new_gold else None
    gold_slice = reads_reviewed(config) and (new_gold or config.data.reviewed.gold_extra)

    with tempfile.TemporaryDirectory(dir=registry.home, prefix="data-build-") as tmp:
        out = Path(tmp) / "dataset"
        out.mkdir()
        build = BuildState(config, task, locked, Path(tmp))
        build.gold_slice = gold_slice
        clock = _Clock()
        with RejectLog(out / "rejects.jsonl", scrub=build.cleaner.scrub_value) as rejects:
            build.read(rejects)
            clock.lap("read + clean")
            deduplicate(build, clock.lap)
            parts = build.split(salt=lock.gold_hash if lock is not None and new_gold else "")
            contexts = _training_contexts(config, task, build)
            build.write(out, parts, rejects)
            clock.lap("split + write" + (" + retrieved context" if contexts is not None else ""))
        documents = None
        if config.data.documents.paths:
            documents = write_corpus(config, build.cleaner.scrub_document, out / "corpus.jsonl")
        gold_hash = hash_file(out / "gold.jsonl")
        build.canaries_checked = check_canaries(out, config.data.pii.canaries)
        clock.lap("corpus + canaries")

        counts = build_counts(
            sources=build.sources,
            rejects=rejects,
            train=build.written["train"],
            validation=build.written["validation"],
            gold=build.written["gold"],
            gold_from_sources=build.gold_from_sources,
            by_label=build.by_label,
        )
        check_accounting(counts)
        _require_rows(counts, rejects)
        report = report_json(counts, build.sources)
        report.update(build.report_sections(documents, gold_hash))
        if contexts is not None:
            report["retrieval"] = contexts.report()
        report.update({"task": task.name, "built_with": f"slmkit {__version__}"})
        if reads_reviewed(config):
            report["reviewed"] = {
                "source": REVIEWED_SOURCE,
                "gold_slice": len(build.slice_rows & set(build.written["gold"])),
                "gold_slice_by": ("--new-gold" if new_gold else "data.reviewed.gold_extra") if gold_slice else None,
            }
        _write_json(out / "report.json", report)
        from slmkit.data.card import write_card

        write_card(report, out / "report.html")
        clock.lap("report")
        # Written last: a dataset directory with a manifest is complete.
        _write_json(out / "manifest.json", _manifest(config, task, build.sources, out, gold_hash, counts))
        digest = registry.store.put_dir(out)

    version = f"ds-{digest[:12]}"
    meta = {
        "config_hash": _config_hash(config),
        "sources": [{"path": s.path, "sha256": s.sha256} for s in build.sources],
        "gold": {
            "reused": locked is not None,
            "locked_from": locked.dataset_version if locked else None,
            "new_gold": new_gold,
            "salt": lock.gold_hash if lock is not None and new_gold else "",
        },
    }
    registry.record_dataset(version, task.name, digest, gold_hash, counts, meta)
    sliced = report.get("reviewed", {}).get("gold_slice", 0)
    if locked is None:
        registry.lock_gold(
            task.name,
            gold_hash,
            version,
            replace=lock is not None,
            reason=f"slmkit data build --new-gold: replaced by the gold set of {version}"
            + (f", with {sliced} reviewed production items as a slice" if sliced else ""),
        )
    elif gold_hash != locked.gold_hash:
        # data.reviewed.gold_extra appended a production slice: the locked rows are unchanged, the lock
        # moves to the longer file (audited), and earlier reports still pair on the items they share.
        registry.lock_gold(
            task.name,
            gold_hash,
            version,
            replace=True,
            reason=f"data.reviewed.gold_extra: {sliced} reviewed production items (random share) added to the "
            f"gold set of {locked.dataset_version} as a slice",
        )
    return DataBuildResult(
        version=version,
        digest=digest,
        path=registry.store.path(digest),
        counts=counts,
        gold_hash=gold_hash,
        gold_reused=locked is not None,
        timings=clock.laps,
        report=report,
    )


def reads_reviewed(config: ProjectConfig) -> bool:
    """Whether the build reads the reviewed production items (data.reviewed, and the file is there)."""
    return config.data.reviewed.enabled and config.resolve_path(REVIEWED_SOURCE).is_file()


def with_reviewed_source(config: ProjectConfig) -> ProjectConfig:
    """The config with the reviewed production items as one more source, when the build reads them."""
    if not reads_reviewed(config) or any(s.path == REVIEWED_SOURCE for s in config.data.sources):
        return config
    source = SourceConfig(path=REVIEWED_SOURCE, format="jsonl", id_field="id", tags_field="tags")
    data = config.data.model_copy(update={"sources": [*config.data.sources, source]})
    return config.model_copy(update={"data": data})


def _training_contexts(config: ProjectConfig, task: Task, build: BuildState) -> Any:
    """For a task with retrieval: every row written gets a RAFT context (see `training_grounder`), its questions
    embedded in batches. None otherwise."""
    grounder = training_grounder(config, task, build.cleaner.scrub_document)
    if grounder is None:
        return None
    contexts, _ = grounder
    build.ground = contexts.attach_many
    return contexts


def training_grounder(
    config: ProjectConfig, task: Task, scrub: Callable[[dict[str, Any]], dict[str, Any]]
) -> tuple[Any, Callable[[dict[str, Any]], dict[str, Any]]] | None:
    """For a task with retrieval: index data.documents (an update: unchanged documents are not read
    again) and return the contexts (slmkit.retrieval.training; `attach_many` grounds rows in batches) and
    the function that gives one row its RAFT context. None for a task without retrieval. `slmkit synth`
    grounds its rows so too."""
    if task.cfg.retrieval is None:
        return None
    from slmkit.retrieval import Retriever, open_index, run_index_update
    from slmkit.retrieval.training import TrainingContexts

    if not config.data.documents.paths:
        raise StageError(
            "task.retrieval is set but data.documents.paths names no documents to retrieve from",
            hint="list the documents under data.documents.paths, or remove task.retrieval",
        )
    run_index_update(config)
    # Document text enters the dataset here: every chunk passes the same PII removal as the corpus.
    contexts = TrainingContexts(task, Retriever(open_index(config)), seed=config.data.split.seed, scrub=scrub)
    return contexts, contexts.attach


class _Clock:
    """Seconds per phase, for the CLI and the benchmark; never written into the dataset (no timestamps)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


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
    settings = _dataset_settings(config)
    # Canaries are planted secrets: the manifest records that they were checked, never their text.
    pii = settings["data"].get("pii") or {}
    pii["canaries"] = [f"sha256:{hashlib.sha256(c.encode()).hexdigest()[:16]}" for c in pii.get("canaries", [])]
    return {
        "kind": "slmkit.dataset",
        "format": DATASET_FORMAT,
        "task": task.name,
        "task_hash": config.task_hash(),
        "config_hash": _config_hash(config),
        "config": settings,
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
    return hashlib.sha256(json.dumps(_dataset_settings(config), sort_keys=True).encode()).hexdigest()


def _dataset_settings(config: ProjectConfig) -> dict[str, Any]:
    """The resolved task and data sections, less what cannot change a row (how many processes read)."""
    resolved = config.resolved()
    data = {key: value for key, value in resolved["data"].items() if key != "workers"}
    return {"task": resolved["task"], "data": data}


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
