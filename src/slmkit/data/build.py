"""`slmkit data build`: sources -> clean, private, deduplicated, split dataset version.

One streaming pass reads every source row, checks it against the task, replaces personal data
(before anything is written), counts its tokens with the base model's tokenizer and writes it
to a spool, keeping only a few numbers per row in memory (see `spool`). Then, on those numbers:
exact duplicates and conflicts, near duplicates (MinHash LSH), semantic duplicates (MiniLM
embeddings), the locked gold set kept out of training, the split. A second pass copies each
spooled row to its split file or to rejects.jsonl with its reason. Last: the corpus of plain
documents, a canary check over every written file, report.json and report.html, the manifest.

Every input row ends in exactly one of train / validation / gold / rejects, and the count is
checked. The files hold no timestamps, so identical sources and config give an identical
dataset version; when it was built lives in the registry record.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from slmkit import __version__
from slmkit.config import ProjectConfig
from slmkit.data import dedup
from slmkit.data.dataset import Example
from slmkit.data.gold import LockedGold, load_locked_gold
from slmkit.data.ingest import RawRow, SourceStats, read_source
from slmkit.data.normalize import dedup_key
from slmkit.data.report import DataBuildResult, build_counts, check_accounting, length_histograms, report_json
from slmkit.data.rows import Reject, RejectLog, answer_difference
from slmkit.data.split import split_rows
from slmkit.data.spool import Column, Spool
from slmkit.errors import DataError, StageError
from slmkit.registry import Registry, hash_file
from slmkit.task import Task

DATASET_FORMAT = 2
CHUNK = 2048  # rows cleaned, token-counted and MinHashed together
LARGE_INPUT_BYTES = 16 * 2**20  # above this, worker processes and sampled token lengths
TOKEN_SAMPLE = 16


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
    task = Task.from_config(config)
    lock = registry.gold_lock(task.name)
    # Read the locked gold set before the data: if it is gone or altered, say so at once.
    locked = load_locked_gold(registry, lock, task) if lock is not None and not new_gold else None

    with tempfile.TemporaryDirectory(dir=registry.home, prefix="data-build-") as tmp:
        out = Path(tmp) / "dataset"
        out.mkdir()
        build = _Build(config, task, locked, Path(tmp))
        clock = _Clock()
        with RejectLog(out / "rejects.jsonl", scrub=build.cleaner.scrub_value) as rejects:
            build.read(rejects)
            clock.lap("read + clean")
            build.deduplicate(clock)
            parts = build.split(salt=lock.gold_hash if lock is not None and new_gold else "")
            build.write(out, parts, rejects)
            clock.lap("split + write")
        documents = build.write_corpus(out / "corpus.jsonl") if config.data.documents.paths else None
        gold_hash = hash_file(out / "gold.jsonl")
        build.check_canaries(out)
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
        report.update({"task": task.name, "built_with": f"slmkit {__version__}"})
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
        timings=clock.laps,
        report=report,
    )


class _Clock:
    """Seconds per phase, for the CLI and the benchmark; never written into the dataset (no timestamps)."""

    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 3)
        self._last = now


class _SplitRow(NamedTuple):
    key: str
    label: Any
    group: str | None


@dataclass
class _Build:
    """One build's state between its passes: the spool, per-row numbers, and the verdicts."""

    config: ProjectConfig
    task: Task
    locked: LockedGold | None
    tmp: Path
    sources: list[SourceStats] = field(default_factory=list)
    verdicts: dedup.Verdicts = field(default_factory=dedup.Verdicts)
    written: dict[str, list[Any]] = field(default_factory=dict)
    by_label: dict[str, dict[str, int]] = field(default_factory=dict)
    gold_from_sources: int = 0
    stages: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        from slmkit.data.clean import Cleaner

        large = self._source_bytes() > LARGE_INPUT_BYTES
        # Large builds measure token lengths on a sample (and on every row that could be too long).
        self.token_sample = TOKEN_SAMPLE if large else 1
        self.cleaner = Cleaner(self.config, self.task, self.token_sample)
        self.spool = Spool(self.tmp / "spool.jsonl")
        self.keys = Column("Q")
        self.answers = Column("Q")
        self.chars = Column("l")
        self.tokens = Column("l")
        self.labels: list[str | None] = []
        self.groups: list[str | None] = []
        self.signatures: list[np.ndarray] = []
        self.gold_marked: dict[int, int] = {}  # spool row -> locked gold row it is
        self._dropped: Counter[str] = Counter()  # rows rejected per cleaning stage
        self._gold_keys: dict[int, int] = {}
        if self.locked is not None:
            for index, example in enumerate(self.locked.examples):
                self._gold_keys.setdefault(_key64(dedup_key(example.dedup_text)), index)

    # --- pass 1: read, check, clean, spool ------------------------------------------------

    def read(self, rejects: RejectLog) -> None:
        """Pass 1: every source row read, checked, cleaned and spooled, in source order.

        Cleaning (validation, PII, tokens, MinHash) runs in worker processes when the input is
        large enough to pay for them; results come back in order, so the dataset is the same
        byte for byte whatever the number of workers.
        """
        from slmkit.data.clean import ChunkResult, clean_chunk

        workers = self._workers()
        pool = None
        if workers > 1:
            import multiprocessing

            from slmkit.data.clean import init_worker, worker_clean_chunk

            pool = multiprocessing.get_context("spawn").Pool(
                workers, initializer=init_worker, initargs=(self.config, self.token_sample)
            )
            results: Iterator[ChunkResult] = pool.imap(worker_clean_chunk, self._chunks(), chunksize=1)
        else:
            results = (clean_chunk(self.cleaner, chunk) for chunk in self._chunks())
        try:
            for result in results:
                self._absorb(result, rejects)
        finally:
            if pool is not None:
                pool.terminate()
        total = sum(s.rows for s in self.sources)
        passed = total
        for name in ("read", "validate", "pii", "token length"):
            dropped = self._dropped[name]
            self.stages.append({"stage": name, "in": passed, "out": passed - dropped, "rejected": dropped})
            passed -= dropped

    def _workers(self) -> int:
        """Processes for pass 1: data.workers, else one per core once the sources pass ~16 MB."""
        import os

        if self.config.data.workers is not None:
            return self.config.data.workers
        return min(os.cpu_count() or 1, 8) if self._source_bytes() > LARGE_INPUT_BYTES else 1

    def _source_bytes(self) -> int:
        paths = [self.config.resolve_path(s.path) for s in self.config.data.sources]
        return sum(path.stat().st_size for path in paths if path.is_file())

    def _chunks(self) -> Iterator[list[tuple[int, RawRow | Reject]]]:
        """Source rows in order, CHUNK at a time, each with the index of its source."""
        chunk: list[tuple[int, RawRow | Reject]] = []
        for index, source in enumerate(self.config.data.sources):
            stats = SourceStats(source.path)
            for item in read_source(self.config, source, stats):
                chunk.append((index, item))
                if len(chunk) >= CHUNK:
                    yield chunk
                    chunk = []
            self.sources.append(stats)
        if chunk:
            yield chunk

    def _absorb(self, result: Any, rejects: RejectLog) -> None:
        from slmkit.data.clean import Cleaned

        self.cleaner.absorb_counts(result)
        if result.signatures is not None and len(result.signatures):
            self.signatures.append(result.signatures)
        for item in result.items:
            if not isinstance(item, Cleaned):
                reject, stage = item
                rejects.add(reject)
                self._dropped[stage] += 1
                continue
            index = self.spool.append(item.line)
            self.keys.append(item.key)
            self.answers.append(item.answer)
            self.chars.append(item.chars)
            self.tokens.append(item.tokens)
            self.labels.append(item.label)
            self.groups.append(item.group)
            gold_row = self._gold_keys.get(item.key)
            if gold_row is not None:
                self._match_gold(index, gold_row, item.output)

    def _match_gold(self, index: int, gold_row: int, output: dict[str, Any]) -> None:
        """A row with a locked gold row's input: that gold row (same answer) or a gold overlap."""
        assert self.locked is not None
        gold = self.locked.examples[gold_row]
        if gold.output != output:
            differing = answer_difference(output, gold.output, "in gold")
            self.verdicts.reject(
                index,
                "gold_overlap",
                f"already in the locked gold set (as {gold.source}) with another answer: {differing}; "
                "make the row agree, or rebuild with --new-gold",
            )
        elif gold_row not in self.gold_marked.values():
            self.gold_marked[index] = gold_row
        # a second copy of a gold row is an exact duplicate of the first: dedup says so

    # --- on the numbers: duplicates, conflicts, gold leaks --------------------------------------

    def describe(self, row: int) -> dict[str, Any]:
        n = len(self.spool)
        if row >= n:
            assert self.locked is not None
            return self.locked.examples[row - n].as_dict()
        return self.spool.get(row)

    def deduplicate(self, clock: _Clock) -> None:
        n = len(self.spool)
        keys, answers = self.keys.numpy(), self.answers.numpy()
        alive = np.ones(n, dtype=bool)
        for row in self.verdicts.rejected:
            alive[row] = False
        dedup.exact(keys, answers, alive, self.describe, self.verdicts)
        after = self._alive(n)
        # Rows matching the locked gold set with another answer were marked while reading.
        self.stages.append({"stage": "exact dedup", "in": n, "out": int(after.sum()), "rejected": n - int(after.sum())})
        alive = after
        clock.lap("exact dedup")

        gold_inputs = [e.dedup_text for e in self.locked.examples] if self.locked is not None else []
        gold_answers = np.array(
            [dedup.answer_hash(e.output) for e in self.locked.examples] if self.locked else [], dtype=np.uint64
        )
        all_answers = np.concatenate([answers, gold_answers])
        pinned = np.zeros(n + len(gold_inputs), dtype=bool)
        pinned[n:] = True
        for row in self.gold_marked:
            pinned[row] = True
        # Locked gold rows stand for themselves only when the sources no longer hold them.
        in_sources = set(self.gold_marked.values())
        virtual = np.array([n + g for g in range(len(gold_inputs)) if g not in in_sources], dtype=np.int64)

        near = self.config.data.dedup.near
        if near.enabled:
            from slmkit.data.near import near_pairs

            signatures = (
                np.concatenate(
                    [*self.signatures, self.cleaner.signatures(gold_inputs)] if gold_inputs else self.signatures
                )
                if (self.signatures or gold_inputs)
                else np.zeros((0, near.num_perm), dtype=np.uint32)
            )
            rows = np.r_[np.flatnonzero(alive), virtual].astype(np.int64)
            found = near_pairs(signatures[rows], near.threshold) if rows.size > 1 else np.zeros((0, 2), np.int64)
            pairs = rows[found]
            scores = (signatures[pairs[:, 0]] == signatures[pairs[:, 1]]).mean(axis=1) if len(pairs) else np.zeros(0)
            dedup.resolve_pairs(
                "near", pairs, scores, all_answers, pinned, self.describe, self.verdicts, near.threshold, n
            )
            self._stage("near dedup", alive)
            alive = self._alive(n)
            clock.lap("near dedup")
        else:
            self.stages.append({"stage": "near dedup", "skipped": True})

        semantic = self.config.data.dedup.semantic
        if semantic.enabled:
            rows = np.r_[np.flatnonzero(alive), virtual].astype(np.int64)
            if rows.size > semantic.max_rows:
                raise DataError(
                    f"semantic dedup over {rows.size} rows is over data.dedup.semantic.max_rows="
                    f"{semantic.max_rows} (its cost grows with the square of the rows)",
                    hint="raise max_rows if you can wait, or set data.dedup.semantic.enabled: false and rely on "
                    "exact and near dedup",
                )
            from slmkit.data.semantic import Embedder, similar_pairs

            embedder = Embedder(batch_size=semantic.batch_size)
            texts = [_dedup_text(self.describe(int(r))) for r in rows]
            found, scores = similar_pairs(embedder.embed(texts), semantic.threshold)
            pairs = rows[found] if len(found) else np.zeros((0, 2), np.int64)
            dedup.resolve_pairs(
                "semantic", pairs, scores, all_answers, pinned, self.describe, self.verdicts, semantic.threshold, n
            )
            self._stage("semantic dedup", alive)
            alive = self._alive(n)
            clock.lap("semantic dedup")
        else:
            self.stages.append({"stage": "semantic dedup", "skipped": True})

    def _alive(self, n: int) -> np.ndarray:
        alive = np.ones(n, dtype=bool)
        if self.verdicts.rejected:
            alive[np.fromiter(self.verdicts.rejected, dtype=np.int64)] = False
        return alive

    def _stage(self, name: str, before: np.ndarray) -> None:
        after = self._alive(len(before))
        self.stages.append(
            {"stage": name, "in": int(before.sum()), "out": int(after.sum()), "rejected": int((before & ~after).sum())}
        )

    # --- the split --------------------------------------------------------------------------

    def split(self, salt: str) -> dict[int, str]:
        """Spool row -> "train" | "validation" | "gold" for every row still alive."""
        n = len(self.spool)
        alive = self._alive(n)
        split = self.config.data.split
        # Chat logs read with turns: all give several rows per conversation, grouped by line.
        grouped = split.group_by is not None or any(g is not None for g in self.groups)
        if grouped and self.locked is not None:
            self._keep_gold_groups_out(alive)
            alive = self._alive(n)
        rows = np.flatnonzero(alive).tolist()
        keys = self.keys.numpy()
        items = [_SplitRow(f"{int(keys[r]):016x}", self.labels[r], self.groups[r]) for r in rows]
        locked_positions = (
            {position for position, row in enumerate(rows) if row in self.gold_marked} if self.locked else None
        )
        parts = split_rows(
            items,
            validation=split.validation,
            gold=split.gold,
            seed=split.seed,
            stratify=split.stratify and self.task.cfg.label_field is not None and not grouped,
            locked_gold=locked_positions,
            gold_salt=salt,
            grouped=grouped,
        )
        where: dict[int, str] = {}
        for name, positions in (("train", parts.train), ("validation", parts.validation), ("gold", parts.gold)):
            for position in positions:
                where[rows[position]] = name
        self.stages.append({"stage": "split", "in": len(rows), "out": len(rows), "rejected": 0})
        return where

    def _keep_gold_groups_out(self, alive: np.ndarray) -> None:
        """With group_by and a locked gold set: rows of a gold group may not train."""
        assert self.locked is not None
        gold_groups = set()
        for row in self.gold_marked:
            if self.groups[row] is not None:
                gold_groups.add(self.groups[row])
        for line in self.locked.path.read_text(encoding="utf-8").splitlines():
            group = json.loads(line).get("group") if line.strip() else None
            if group is not None:
                gold_groups.add(group)
        for row in np.flatnonzero(alive).tolist():
            if row not in self.gold_marked and self.groups[row] in gold_groups:
                self.verdicts.reject(
                    row,
                    "gold_group",
                    f"its group {self.config.data.split.group_by}={self.groups[row]!r} is in the locked gold set; "
                    "kept out of training so no group straddles splits",
                )

    # --- pass 2: write ------------------------------------------------------------------------

    def write(self, out: Path, where: dict[int, str], rejects: RejectLog) -> None:
        files = {name: (out / f"{name}.jsonl").open("wb") for name in ("train", "validation")}
        gold_fh = None if self.locked is not None else (out / "gold.jsonl").open("wb")
        names = ("train", "validation", "gold")
        self.written = {name: [] for name in names}
        label_counts: dict[str, Counter[str]] = {name: Counter() for name in names}
        length_rows: dict[str, list[int]] = {name: [] for name in names}
        stage_of = {
            "duplicate": "dedup",
            "conflict": "dedup",
            "near_duplicate": "dedup",
            "semantic_duplicate": "dedup",
            "gold_leak": "gold",
            "gold_overlap": "gold",
            "gold_group": "gold",
        }
        try:
            for row, line in enumerate(self.spool.lines()):
                verdict = self.verdicts.rejected.get(row)
                if verdict is not None:
                    kind, reason = verdict
                    record = json.loads(line)
                    rejects.add(
                        Reject(
                            source=record["source"],
                            id=record["id"],
                            kind=kind,
                            reason=reason,
                            stage=stage_of.get(kind, "dedup"),
                            raw={"input": record["input"], "output": record["output"]},
                        )
                    )
                    continue
                name = where[row]
                if name == "gold":
                    self.gold_from_sources += 1
                if name != "gold" or gold_fh is not None:
                    (gold_fh if name == "gold" else files[name]).write(line + b"\n")  # type: ignore[union-attr]
                self.written[name].append(row)
                length_rows[name].append(row)
                if self.labels[row] is not None:
                    label_counts[name][self.labels[row]] += 1  # type: ignore[index]
        finally:
            for fh in files.values():
                fh.close()
            if gold_fh is not None:
                gold_fh.close()
        if self.locked is not None:
            shutil.copyfile(self.locked.path, out / "gold.jsonl")
            self.written["gold"] = list(range(len(self.locked.examples)))
            label_counts["gold"] = Counter(_label_name(e.label) for e in self.locked.examples)
        labels = self.task.labels
        if labels is not None:
            self.by_label = {
                name: {_label_name(label): label_counts[name][_label_name(label)] for label in labels} for name in names
            }
        self._length_rows = length_rows
        self.spool.close()

    def write_corpus(self, path: Path) -> dict[str, Any]:
        from slmkit.data.documents import iter_documents

        files: set[str] = set()
        chunks = chars = 0
        with path.open("w", encoding="utf-8") as fh:
            for chunk in iter_documents(self.config):
                record = self.cleaner.scrub_document(chunk.as_dict())
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                files.add(record["source"].rsplit(":", 1)[0])
                chunks += 1
                chars += len(record["text"])
        return {"files": len(files), "chunks": chunks, "chars": chars}

    def check_canaries(self, out: Path) -> None:
        """Stop the build if a planted fake secret is in any file about to be stored."""
        canaries = self.config.data.pii.canaries
        if not canaries:
            return
        from slmkit.data.pii import surviving_canaries

        for path in sorted(out.glob("*.jsonl")):
            with path.open(encoding="utf-8") as fh:
                for number, line in enumerate(fh, start=1):
                    found = surviving_canaries(line, canaries)
                    if found:
                        raise DataError(
                            f"canary {found[0][:4]}... survived PII removal: {path.name} line {number}; nothing "
                            "was stored",
                            hint="the PII rules miss this kind of secret: add its entity type to data.pii.entities "
                            "(or a pattern for it), then build again",
                        )
        self.canaries_checked = len(canaries)

    # --- report ---------------------------------------------------------------------------------

    def report_sections(self, documents: dict[str, Any] | None, gold_hash: str) -> dict[str, Any]:
        tokens, chars = self.tokens.numpy(), self.chars.numpy()
        split = self.config.data.split
        sections: dict[str, Any] = {
            "stages": self.stages,
            "pii": self.cleaner.pii_report(getattr(self, "canaries_checked", 0)),
            "lengths": {
                "input_chars": length_histograms(chars, self._length_rows),
                "tokens": length_histograms(tokens, self._length_rows),
            },
            "duplicates": {
                **{kind: stats for kind, stats in self.verdicts.stats.items()},
                "examples": self.verdicts.examples,
            },
            "conflicts": {
                "clusters": self.verdicts.conflict_clusters,
                "rows": sum(1 for kind, _ in self.verdicts.rejected.values() if kind == "conflict"),
                "examples": self.verdicts.conflict_examples,
            },
            "splits": {
                "seed": split.seed,
                "stratify": split.stratify and split.group_by is None,
                "group_by": split.group_by,
                "gold_hash": gold_hash,
            },
        }
        if documents is not None:
            sections["documents"] = documents
        return sections


def _dedup_text(record: dict[str, Any]) -> str:
    """What dedup compares for a stored row: its input, after its chat history when it has one."""
    return Example(
        record["id"], record["source"], record["input"], record["fields"], record["output"], record["label"],
        history=tuple(record.get("history") or ()),
    ).dedup_text  # fmt: skip


def _key64(hex_key: str) -> int:
    return int(hex_key[:16], 16)


def _label_name(label: Any) -> str:
    return label if isinstance(label, str) else json.dumps(label)


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
    # Canaries are planted secrets: the manifest records that they were checked, never their text.
    pii = resolved["data"].get("pii") or {}
    pii["canaries"] = [f"sha256:{hashlib.sha256(c.encode()).hexdigest()[:16]}" for c in pii.get("canaries", [])]
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
