"""The state of one `slmkit data build` between its passes, and the passes themselves.

Pass 1 (`read`) streams every source row through validation, PII removal, token counting and
MinHash (in worker processes for large inputs) and spools the kept rows, keeping a few numbers
per row in memory. `dedup.deduplicate` decides on those numbers; `split` assigns the rows left;
pass 2 (`write`) copies each spooled row to its split file or to rejects.jsonl with its reason.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

from slmkit.config import REVIEWED_SOURCE, ProjectConfig
from slmkit.data import dedup
from slmkit.data.dataset import Example
from slmkit.data.gold import LockedGold
from slmkit.data.ingest import RawRow, SourceStats, read_source
from slmkit.data.normalize import dedup_key
from slmkit.data.report import length_histograms
from slmkit.data.rows import Reject, RejectLog, answer_difference
from slmkit.data.split import split_rows
from slmkit.data.spool import Column, Spool
from slmkit.task import Task

CHUNK = 2048  # rows cleaned, token-counted and MinHashed together
LARGE_INPUT_BYTES = 16 * 2**20  # above this, worker processes and sampled token lengths
TOKEN_SAMPLE = 16
SPLITS = ("train", "validation", "gold")
GROUND_BATCH = 128  # rows given retrieved context together (their questions embedded in one pass)


class _SplitRow(NamedTuple):
    key: str
    label: Any
    group: str | None


@dataclass
class BuildState:
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
    # A task with retrieval: gives each row written to a split its context (slmkit.retrieval.context).
    # A task with retrieval: rows in, the same rows with their retrieved context out (data.build).
    ground: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None

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
        self.gold_source_rows: set[int] = set()  # spool rows read from a role: gold source, drawing a new gold set
        # Reviewed production rows of the random share that go to gold as a new slice (data.reviewed.gold_extra
        # or --new-gold; set by the build), and the lines that slice appends to the locked gold file.
        self.gold_slice = False
        self.slice_rows: set[int] = set()
        self._slice_lines: list[bytes] = []
        self._dropped: Counter[str] = Counter()  # rows rejected per cleaning stage
        self.canaries_checked = 0
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
        # Always a last chunk, even an empty one: with a pool, this generator runs in the pool's
        # feeder thread, and the result of this chunk arriving means every source's stats are in.
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
            elif item.gold_source and self.locked is not None:
                self.verdicts.reject(
                    index,
                    "gold_unlocked",
                    "in a gold source (role: gold) but not in the locked gold set: the gold file changed since it "
                    "was locked; kept out of training. Rebuild with --new-gold to lock the file as it is now",
                )
            elif item.gold_source:
                self.gold_source_rows.add(index)
            elif self.gold_slice and _in_gold_slice(item.line):
                self.slice_rows.add(index)
                if self.locked is not None:
                    # Pinned like a gold source's row: dedup keeps it and removes its copies as gold leaks.
                    self.gold_source_rows.add(index)

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

    def dedup_text(self, row: int) -> str:
        """What dedup compares for a row: its input, after its chat history when it has one."""
        record = self.describe(row)
        return Example(
            record["id"], record["source"], record["input"], record["fields"], record["output"], record["label"],
            history=tuple(record.get("history") or ()),
        ).dedup_text  # fmt: skip

    def describe(self, row: int) -> dict[str, Any]:
        """A row as stored (spool rows, then locked gold rows the sources no longer hold)."""
        n = len(self.spool)
        if row >= n:
            assert self.locked is not None
            return self.locked.examples[row - n].as_dict()
        return self.spool.get(row)

    def alive(self) -> np.ndarray:
        """Rows of the spool not rejected so far."""
        n = len(self.spool)
        alive = np.ones(n, dtype=bool)
        if self.verdicts.rejected:
            alive[np.fromiter(self.verdicts.rejected, dtype=np.int64)] = False
        return alive

    def record_stage(self, name: str, before: np.ndarray) -> None:
        """A stage's line in the report: rows alive before it, after it, and rejected by it."""
        after = self.alive()
        self.stages.append(
            {"stage": name, "in": int(before.sum()), "out": int(after.sum()), "rejected": int((before & ~after).sum())}
        )

    # --- the split --------------------------------------------------------------------------

    def split(self, salt: str) -> np.ndarray:
        """Per spool row, the index of its split in SPLITS (train, validation, gold); -1 for rejected rows."""
        alive = self.alive()
        split = self.config.data.split
        # Chat logs read with turns: all give several rows per conversation, grouped by line.
        grouped = split.group_by is not None or any(g is not None for g in self.groups)
        if grouped and self.locked is not None:
            self._keep_gold_groups_out(alive)
            alive = self.alive()
        rows = np.flatnonzero(alive).tolist()
        keys = self.keys.numpy()
        items = [_SplitRow(f"{int(keys[r]):016x}", self.labels[r], self.groups[r]) for r in rows]
        pinned = self.gold_marked.keys() | self.gold_source_rows
        locked_positions = (
            {position for position, row in enumerate(rows) if row in pinned}
            if self.locked is not None or self.gold_source_rows
            else None
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
        where = np.full(len(self.spool), -1, dtype=np.int8)
        chosen = np.asarray(rows, dtype=np.int64)
        for number, positions in enumerate((parts.train, parts.validation, parts.gold)):
            where[chosen[np.asarray(positions, dtype=np.int64)]] = number
        if self.slice_rows:
            # A new gold draw (--new-gold) drew from every row; the production slice joins it whole.
            slice_alive = [row for row in self.slice_rows if alive[row]]
            where[np.asarray(slice_alive, dtype=np.int64)] = SPLITS.index("gold")
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

    def write(self, out: Path, where: np.ndarray, rejects: RejectLog) -> None:
        files = {name: (out / f"{name}.jsonl").open("wb") for name in ("train", "validation")}
        gold_fh = None if self.locked is not None else (out / "gold.jsonl").open("wb")
        names = ("train", "validation", "gold")
        self.written = {name: [] for name in names}
        label_counts: dict[str, Counter[str]] = {name: Counter() for name in names}
        ungrounded: list[tuple[IO[bytes], bytes]] = []  # (file, line) waiting for their context, in order
        length_rows: dict[str, list[int]] = {name: [] for name in names}
        stage_of = {
            "duplicate": "dedup",
            "conflict": "dedup",
            "near_duplicate": "dedup",
            "semantic_duplicate": "dedup",
            "gold_leak": "gold",
            "gold_overlap": "gold",
            "gold_group": "gold",
            "gold_unlocked": "gold",
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
                name = SPLITS[where[row]]
                if name == "gold":
                    self.gold_from_sources += 1
                if name == "gold" and gold_fh is None and row in self.slice_rows:
                    if self.ground is not None:  # a few rows: grounded one by one, as they come
                        line = json.dumps(self.ground([json.loads(line)])[0], ensure_ascii=False).encode()
                    self._slice_lines.append(line + b"\n")  # appended to the locked gold file below
                elif name != "gold" or gold_fh is not None:
                    target = gold_fh if name == "gold" else files[name]
                    assert target is not None
                    if self.ground is None:
                        target.write(line + b"\n")
                    else:  # grounded in batches: one embedding pass for many questions
                        ungrounded.append((target, line))
                        if len(ungrounded) >= GROUND_BATCH:
                            self._write_grounded(ungrounded)
                self.written[name].append(row)
                length_rows[name].append(row)
                if self.labels[row] is not None:
                    label_counts[name][self.labels[row]] += 1  # type: ignore[index]
            self._write_grounded(ungrounded)
        finally:
            for fh in files.values():
                fh.close()
            if gold_fh is not None:
                gold_fh.close()
        if self.locked is not None:
            shutil.copyfile(self.locked.path, out / "gold.jsonl")
            appended = [row for row in self.written["gold"] if row in self.slice_rows]
            if self._slice_lines:
                with (out / "gold.jsonl").open("ab") as fh:
                    fh.writelines(self._slice_lines)
            self.written["gold"] = list(range(len(self.locked.examples))) + appended
            label_counts["gold"] = Counter(_label_name(e.label) for e in self.locked.examples)
            label_counts["gold"].update(self.labels[row] for row in appended if self.labels[row] is not None)
        labels = self.task.labels
        if labels is not None:
            self.by_label = {
                name: {_label_name(label): label_counts[name][_label_name(label)] for label in labels} for name in names
            }
        self._length_rows = length_rows
        self.spool.close()

    def _write_grounded(self, pending: list[tuple[IO[bytes], bytes]]) -> None:
        """Give the pending rows their context and write each to its file, in the order they came."""
        if not pending:
            return
        assert self.ground is not None
        grounded = self.ground([json.loads(line) for _, line in pending])
        for (target, _), row in zip(pending, grounded, strict=True):
            target.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
        pending.clear()

    # --- report ---------------------------------------------------------------------------------

    def report_sections(self, documents: dict[str, Any] | None, gold_hash: str) -> dict[str, Any]:
        tokens, chars = self.tokens.numpy(), self.chars.numpy()
        split = self.config.data.split
        sections: dict[str, Any] = {
            "stages": self.stages,
            "pii": self.cleaner.pii_report(self.canaries_checked),
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
                "gold_sources": [s.path for s in self.config.data.sources if s.role == "gold"],
            },
        }
        if documents is not None:
            sections["documents"] = documents
        return sections


def _in_gold_slice(line: bytes) -> bool:
    """A reviewed production row of the random share (tagged so by slmkit.monitor.reviewed)."""
    record = json.loads(line)
    return str(record.get("source", "")).startswith(REVIEWED_SOURCE + ":") and "stratum:random" in (
        record.get("tags") or ()
    )


def _key64(hex_key: str) -> int:
    return int(hex_key[:16], 16)


def _label_name(label: Any) -> str:
    return label if isinstance(label, str) else json.dumps(label)
