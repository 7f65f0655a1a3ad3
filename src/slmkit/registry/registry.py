"""The registry: what was built, trained, evaluated and released, and who moved which alias."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import EllipsisType, TracebackType
from typing import Any

from slmkit.errors import RegistryError
from slmkit.registry import releases, retrains
from slmkit.registry.db import audit, connect, now
from slmkit.registry.records import (
    AuditEntry,
    DatasetRecord,
    EvalRecord,
    Evidence,
    ExportRecord,
    GoldLock,
    NewEvidence,
    Release,
    ReviewVerdict,
    RunRecord,
    audit_from_row,
    dataset_from_row,
    default_actor,
    eval_from_row,
    run_from_row,
    to_json,
    to_json_ordered,
    verdict_from_row,
)
from slmkit.registry.retrains import RetrainRecord
from slmkit.registry.store import ObjectStore


class Registry:
    """registry.db + objects/ under a project's .slmkit directory (created if missing).

    Reads see the last committed state; every write is one short `BEGIN IMMEDIATE`
    transaction, so writers in several processes queue on the lock instead of failing.
    """

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.store = ObjectStore(self.home / "objects")
        self.conn = connect(self.home / "registry.db")
        # The connection may be shared by server threads; one transaction at a time on it.
        self._lock = threading.RLock()

    def close(self) -> None:
        """Close the database connection (the object store needs no closing)."""
        self.conn.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise

    # --- artifacts, datasets, gold locks ---------------------------------------------------

    def record_artifact(self, digest: str, kind: str, size: int, meta: dict[str, Any] | None = None) -> None:
        """Note a stored object's kind and size; recording the same digest again changes nothing."""
        with self._write() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?, ?, ?)",
                (digest, kind, size, now(), to_json(meta or {})),
            )

    def find_artifacts(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        """(digest, meta) of every stored object recorded as `kind`, newest first."""
        rows = self.conn.execute(
            "SELECT digest, meta FROM artifacts WHERE kind = ? ORDER BY created_at DESC, rowid DESC", (kind,)
        )
        return [(r["digest"], json.loads(r["meta"])) for r in rows]

    def record_export(self, digest: str, size: int, name: str, meta: dict[str, Any]) -> None:
        """Record an export of release `name` (already in the store) and audit it, in one transaction.

        Exporting the same bytes again keeps one artifact row with the latest check in `meta`;
        the audit log keeps every export.
        """
        with self._write() as conn:
            conn.execute(
                "INSERT INTO artifacts VALUES (?, 'export', ?, ?, ?) ON CONFLICT(digest) DO UPDATE SET "
                "meta = excluded.meta, created_at = excluded.created_at WHERE artifacts.kind = 'export'",
                (digest, size, now(), to_json(meta)),
            )
            keys = ("version", "format", "quantization", "agreement", "items")
            audit(conn, "export", name, {"digest": digest, **{k: meta.get(k) for k in keys}})

    def list_exports(self, name: str | None = None) -> list[ExportRecord]:
        """Recorded exports (of release `name`, or all), oldest first."""
        rows = self.conn.execute(
            "SELECT * FROM artifacts WHERE kind = 'export' AND (json_extract(meta, '$.release') = ? OR ? IS NULL) "
            "ORDER BY created_at, rowid",
            (name, name),
        )
        return [ExportRecord(r["digest"], r["size"], r["created_at"], json.loads(r["meta"])) for r in rows]

    def record_dataset(
        self, version: str, task: str, digest: str, gold_hash: str, counts: dict[str, Any], meta: dict[str, Any]
    ) -> DatasetRecord:
        """Record a built dataset version (its directory already in the store).

        Rebuilding an existing version changes nothing but its `built_at`, which makes it the
        task's latest again.
        """
        size = self.store.size(digest) if self.store.exists(digest) else 0
        with self._write() as conn:
            row = conn.execute("SELECT digest FROM datasets WHERE version = ?", (version,)).fetchone()
            if row and row["digest"] != digest:
                raise RegistryError(
                    f"dataset version {version} is already recorded with different content "
                    f"(sha256:{row['digest'][:12]}, not {digest[:12]})",
                    hint="name versions after their digest, e.g. ds-<first 12 hex>",
                )
            if row is None:
                conn.execute(
                    "INSERT OR IGNORE INTO artifacts VALUES (?, 'dataset', ?, ?, ?)",
                    (digest, size, now(), to_json({"task": task, "version": version})),
                )
                stamp = now()
                conn.execute(
                    "INSERT INTO datasets (version, task, digest, gold_hash, counts, meta, created_at, built_at,"
                    " build_seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        version,
                        task,
                        digest,
                        gold_hash,
                        to_json(counts),
                        to_json(meta),
                        stamp,
                        stamp,
                        self._next_build_seq(conn),
                    ),
                )
                audit(conn, "dataset", task, {"version": version, "digest": digest, "gold_hash": gold_hash})
            else:
                conn.execute(
                    "UPDATE datasets SET built_at = ?, build_seq = ? WHERE version = ?",
                    (now(), self._next_build_seq(conn), version),
                )
        return self.get_dataset(version)

    @staticmethod
    def _next_build_seq(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT COALESCE(MAX(build_seq), 0) + 1 FROM datasets").fetchone()[0])

    def get_dataset(self, version: str | None = None, task: str | None = None) -> DatasetRecord:
        """A dataset version by name, or (version=None) the latest built for `task`."""
        if version is not None:
            row = self.conn.execute("SELECT * FROM datasets WHERE version = ?", (version,)).fetchone()
            if row is None:
                known = [
                    r["version"]
                    for r in self.conn.execute(
                        "SELECT version FROM datasets ORDER BY created_at DESC, rowid DESC LIMIT 10"
                    )
                ]
                raise RegistryError(
                    f"no dataset version '{version}'; recent: {', '.join(known) or 'none'}",
                    hint="run `slmkit data build` to build one",
                )
            return dataset_from_row(row)
        row = self.conn.execute(
            "SELECT * FROM datasets WHERE task = ? OR ? IS NULL ORDER BY build_seq DESC LIMIT 1",
            (task, task),
        ).fetchone()
        if row is None:
            what = f"for task {task}" if task else "for any task"
            raise RegistryError(f"no dataset built yet {what}; run `slmkit data build`")
        return dataset_from_row(row)

    def list_datasets(self, task: str) -> list[DatasetRecord]:
        """The task's dataset versions, oldest first."""
        rows = self.conn.execute("SELECT * FROM datasets WHERE task = ? ORDER BY created_at, rowid", (task,))
        return [dataset_from_row(r) for r in rows]

    def lock_gold(
        self, task: str, gold_hash: str, dataset_version: str, *, replace: bool = False, reason: str = ""
    ) -> GoldLock:
        """Fix the task's gold set; a different locked one is refused unless `replace` (`--new-gold`).

        Replacing happens in one transaction: there is never a moment without a lock.
        """
        with self._write() as conn:
            current = conn.execute("SELECT gold_hash FROM gold_locks WHERE task = ?", (task,)).fetchone()
            if current and current["gold_hash"] != gold_hash and replace:
                conn.execute("DELETE FROM gold_locks WHERE task = ?", (task,))
                audit(
                    conn,
                    "gold_unlock",
                    task,
                    {"gold_hash": current["gold_hash"], "reason": reason, "replaced_by": gold_hash},
                )
                current = None
            if current and current["gold_hash"] != gold_hash:
                raise RegistryError(
                    f"task {task} already has a locked gold set (sha256:{current['gold_hash'][:12]})",
                    hint="rebuild with `slmkit data build --new-gold` to replace it",
                )
            if current is None:
                conn.execute(
                    "INSERT INTO gold_locks VALUES (?, ?, ?, ?, ?)",
                    (task, gold_hash, dataset_version, now(), default_actor()),
                )
                audit(conn, "gold_lock", task, {"gold_hash": gold_hash, "dataset_version": dataset_version})
        lock = self.gold_lock(task)
        assert lock is not None  # just written, and locks are only removed by unlock_gold
        return lock

    def gold_lock(self, task: str) -> GoldLock | None:
        """The task's locked gold set, or None before the first `slmkit data build`."""
        row = self.conn.execute("SELECT * FROM gold_locks WHERE task = ?", (task,)).fetchone()
        return GoldLock(**dict(row)) if row else None

    def unlock_gold(self, task: str, reason: str = "") -> None:
        """Drop the task's gold lock (for `--new-gold`); the audit log keeps what it was."""
        with self._write() as conn:
            row = conn.execute("SELECT * FROM gold_locks WHERE task = ?", (task,)).fetchone()
            if row is None:
                return
            conn.execute("DELETE FROM gold_locks WHERE task = ?", (task,))
            detail = {"gold_hash": row["gold_hash"], "dataset_version": row["dataset_version"], "reason": reason}
            audit(conn, "gold_unlock", task, detail)

    # --- runs and eval reports ------------------------------------------------------------

    def start_run(
        self, run_id: str, task: str, dataset_version: str, base_model: dict[str, Any], config: dict[str, Any]
    ) -> None:
        """Record a training run as `running`."""
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE run_id = ?", (run_id,)).fetchone():
                raise RegistryError(f"a training run with id {run_id} already exists", hint="use a new run id")
            conn.execute(
                "INSERT INTO runs (run_id, task, dataset_version, base_model, status, config, created_at) "
                "VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (run_id, task, dataset_version, to_json_ordered(base_model), to_json_ordered(config), now()),
            )

    def finish_run(self, run_id: str, adapter_digest: str, metrics: dict[str, Any], status: str = "completed") -> None:
        """Record a run's adapter and metrics; it becomes the task's latest completed run."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = ?, adapter_digest = ?, metrics = ?, finished_at = ? WHERE run_id = ?",
                (status, adapter_digest, to_json(metrics), now(), run_id),
            )
            if cur.rowcount == 0:
                raise RegistryError(f"no training run '{run_id}' to finish", hint="call start_run first")

    def fail_run(self, run_id: str, reason: str) -> None:
        """Mark a run failed, keeping why (truncated to 2000 characters)."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = 'failed', error = ?, finished_at = ? WHERE run_id = ?",
                (reason[:2000], now(), run_id),
            )
            if cur.rowcount == 0:
                raise RegistryError(f"no training run '{run_id}' to mark failed", hint="call start_run first")

    def reopen_run(self, run_id: str) -> None:
        """Mark a failed or interrupted run `running` again, to resume it from its checkpoint."""
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE runs SET status = 'running', error = NULL, finished_at = NULL "
                "WHERE run_id = ? AND status != 'completed'",
                (run_id,),
            )
            if cur.rowcount == 0:
                raise RegistryError(f"no unfinished training run '{run_id}' to resume", hint="train a new run")

    def get_run(self, run_id: str | None = None, task: str | None = None) -> RunRecord:
        """A completed run by id, or (run_id=None) the task's latest completed run.

        A run that is still running or failed is refused: nothing downstream can use it.
        `list_runs` shows every run whatever its status.
        """
        if run_id is not None:
            row = self.conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                recent = [
                    r["run_id"]
                    for r in self.conn.execute("SELECT run_id FROM runs ORDER BY created_at DESC, rowid DESC LIMIT 5")
                ]
                raise RegistryError(
                    f"no training run '{run_id}'; recent runs: {', '.join(recent) or 'none'}",
                    hint="run `slmkit train`, or pick one of the recent runs",
                )
            if row["status"] != "completed":
                why = f": {row['error']}" if row["error"] else ""
                raise RegistryError(
                    f"run {run_id} is {row['status']}, not completed{why}", hint="train again with `slmkit train`"
                )
            return run_from_row(row)
        row = self.conn.execute(
            "SELECT * FROM runs WHERE status = 'completed' AND (task = ? OR ? IS NULL) "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1",
            (task, task),
        ).fetchone()
        if row is None:
            raise RegistryError(f"no completed training run for task {task or '(any)'}", hint="run `slmkit train`")
        return run_from_row(row)

    def list_runs(self, task: str) -> list[RunRecord]:
        """Every run of the task, whatever its status, oldest first."""
        rows = self.conn.execute("SELECT * FROM runs WHERE task = ? ORDER BY created_at, rowid", (task,))
        return [run_from_row(r) for r in rows]

    def runs_page(self, task: str, limit: int, offset: int = 0) -> list[RunRecord]:
        """One page of the task's runs, newest first (the console lists a thousand runs this way)."""
        rows = self.conn.execute(
            "SELECT * FROM runs WHERE task = ? ORDER BY created_at DESC, rowid DESC LIMIT ? OFFSET ?",
            (task, limit, offset),
        )
        return [run_from_row(r) for r in rows]

    def find_run(self, run_id: str) -> RunRecord | None:
        """A run by id whatever its status (running, failed, completed), or None."""
        row = self.conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return run_from_row(row) if row else None

    def counts(self, task: str) -> dict[str, int]:
        """How many dataset versions, runs, evaluations and releases the task has."""
        queries = {
            "datasets": "SELECT COUNT(*) FROM datasets WHERE task = ?",
            "runs": "SELECT COUNT(*) FROM runs WHERE task = ?",
            "evals": "SELECT COUNT(*) FROM eval_reports WHERE task = ?",
            "releases": "SELECT COUNT(*) FROM releases WHERE name = ?",
        }
        return {what: int(self.conn.execute(sql, (task,)).fetchone()[0]) for what, sql in queries.items()}

    def record_eval(
        self, task: str, run_id: str | None, digest: str, gold_hash: str, passed: bool, summary: dict[str, Any]
    ) -> EvalRecord:
        """Record an eval report (already in the store) and whether its gates passed."""
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO eval_reports (run_id, task, digest, gold_hash, passed, summary, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, task, digest, gold_hash, int(passed), to_json(summary), now()),
            )
            audit(conn, "eval", task, {"run_id": run_id, "report": digest, "passed": passed})
            row = conn.execute("SELECT * FROM eval_reports WHERE id = ?", (cur.lastrowid,)).fetchone()
        return eval_from_row(row)

    def eval_by_digest(self, digest: str) -> EvalRecord | None:
        """The latest eval record of the report stored as `digest`, or None."""
        row = self.conn.execute(
            "SELECT * FROM eval_reports WHERE digest = ? ORDER BY id DESC LIMIT 1", (digest,)
        ).fetchone()
        return eval_from_row(row) if row else None

    def latest_eval(self, run_id: str) -> EvalRecord | None:
        """The run's most recent evaluation, or None if it was never evaluated."""
        row = self.conn.execute(
            "SELECT * FROM eval_reports WHERE run_id = ? ORDER BY id DESC LIMIT 1", (run_id,)
        ).fetchone()
        return eval_from_row(row) if row else None

    # --- releases and aliases (the SQL lives in releases.py) ------------------------------

    def create_release(
        self,
        *,
        name: str,
        run_id: str,
        adapter_digest: str,
        base_model: dict[str, Any],
        dataset_version: str,
        gold_hash: str,
        eval_report_digest: str,
        config: dict[str, Any],
        note: str = "",
        alias: str | None = "production",
        actor: str | None = None,
        provenance: dict[str, Any] | None = None,
        evidence: list[NewEvidence] | None = None,
        expected_parent: int | EllipsisType | None = ...,
    ) -> Release:
        """Record the next version of `name` and move `alias` to it, in one transaction.

        Versions count from 1 per name. `parent_version` is where `alias` pointed before: the
        release `rollback` returns to. `actor` defaults to user@host. `evidence` (the rollback
        rehearsal) is attached in the same transaction; with `expected_parent`, the release is
        refused if `alias` no longer points there (another release moved it meanwhile).
        """
        with self._write() as conn:
            version = releases.insert_release(
                conn,
                name=name,
                run_id=run_id,
                adapter_digest=adapter_digest,
                base_model=base_model,
                dataset_version=dataset_version,
                gold_hash=gold_hash,
                eval_report_digest=eval_report_digest,
                config=config,
                note=note,
                alias=alias,
                actor=actor or default_actor(),
                provenance=provenance,
                evidence=evidence,
                expected_parent=expected_parent,
            )
        return self.get_release(name, version)

    def record_evidence(
        self,
        name: str,
        version: int,
        kind: str,
        *,
        passed: bool | None,
        detail: dict[str, Any],
        actor: str | None = None,
    ) -> Evidence:
        """Attach evidence to a release (audited): a latency run under load, a review sign-off.

        Evidence is append-only; the newest of a kind is what `slmkit check` judges. Put a
        one-line `summary` in `detail`: the audit log and the checklist show it.
        """
        with self._write() as conn:
            row_id = releases.insert_evidence(
                conn, name, version, NewEvidence(kind, passed, detail), actor=actor or default_actor()
            )
        return next(e for e in releases.list_evidence(self.conn, name, version) if e.id == row_id)

    def current(self, name: str, alias: str) -> Release | None:
        """The release `name@alias` points at now, or None when the alias is not set."""
        version = releases.alias_version(self.conn, name, alias)
        return None if version is None else self.get_release(name, version)

    def get_release(self, name: str, version: int) -> Release:
        """One release; RegistryError listing the versions (or known names) when absent."""
        return releases.get_release(self.conn, name, version)

    def list_releases(self, name: str | None = None) -> list[Release]:
        """Releases (of `name`, or all), by name then version, each with the aliases pointing at it."""
        return releases.list_releases(self.conn, name)

    def aliases(self, name: str) -> dict[str, int]:
        """alias -> version for `name`."""
        return releases.aliases(self.conn, name)

    def resolve(self, ref: str, default_alias: str = "production") -> Release:
        """`name` (its default alias), `name@3`, `name@v3` or `name@<alias>` -> that release.

        RegistryError lists the known names, aliases and versions when `ref` does not resolve.
        """
        return releases.resolve(self.conn, ref, default_alias)

    def set_alias(self, name: str, alias: str, version: int, reason: str = "", actor: str | None = None) -> None:
        """Point `alias` at an existing version of `name` (audited; `actor` defaults to user@host)."""
        releases.check_alias(alias)
        with self._write() as conn:
            releases.get_release(conn, name, version)  # must exist
            releases.move_alias(
                conn, name, alias, version, reason=reason or "set_alias", actor=actor or default_actor()
            )

    def rollback(
        self, name: str, alias: str = "production", to: int | None = None, reason: str = "", actor: str | None = None
    ) -> tuple[int, int]:
        """Move `alias` back to the parent of the release it points at (or to version `to`).

        Returns (from_version, to_version). Repeated rollbacks walk the chain: v3 -> v2 -> v1;
        past the first release it raises "nothing to roll back to".
        """
        actor = actor or default_actor()
        with self._write() as conn:
            current, target = releases.rollback_target(conn, name, alias, to)
            audit(conn, "rollback", name, {"alias": alias, "from": current, "to": target, "reason": reason}, actor)
            releases.move_alias(conn, name, alias, target, reason=reason or "rollback", actor=actor)
        return current, target

    def record_verdict(
        self,
        name: str,
        version: int,
        item_id: str,
        verdict: str,
        *,
        correction: Any = None,
        note: str = "",
        report_digest: str,
        actor: str | None = None,
    ) -> ReviewVerdict:
        """Record a reviewer's verdict on one review item of `name@version` (audited, append-only).

        The caller (slmkit.eval.verdicts) checks the item and the correction; this only stores them.
        """
        actor = actor or default_actor()
        with self._write() as conn:
            releases.get_release(conn, name, version)  # must exist
            cur = conn.execute(
                "INSERT INTO review_verdicts (name, version, item_id, verdict, correction, note, report_digest,"
                " created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    name,
                    version,
                    item_id,
                    verdict,
                    None if correction is None else to_json_ordered(correction),
                    note,
                    report_digest,
                    now(),
                    actor,
                ),
            )
            audit(conn, "verdict", name, {"version": version, "item": item_id, "verdict": verdict}, actor)
            row = conn.execute("SELECT * FROM review_verdicts WHERE id = ?", (cur.lastrowid,)).fetchone()
        return verdict_from_row(row)

    def review_verdicts(self, name: str, version: int) -> dict[str, ReviewVerdict]:
        """item id -> the current (newest) verdict on it, for every answered item of `name@version`."""
        rows = self.conn.execute(
            "SELECT * FROM review_verdicts WHERE id IN (SELECT MAX(id) FROM review_verdicts "
            "WHERE name = ? AND version = ? GROUP BY item_id) ORDER BY id",
            (name, version),
        )
        return {r["item_id"]: verdict_from_row(r) for r in rows}

    # --- retrains (the SQL lives in retrains.py) --------------------------------------------

    def start_retrain(self, *, task: str, inputs: str, config_hash: str, production: str, why: str) -> RetrainRecord:
        """Record a retrain starting at its first stage (build)."""
        with self._write() as conn:
            retrain_id = retrains.insert(
                conn, task=task, inputs=inputs, config_hash=config_hash, production=production, why=why
            )
        return retrains.get(self.conn, retrain_id)

    def update_retrain(self, retrain_id: int, **changes: Any) -> RetrainRecord:
        """Move a retrain on (stage, run id, dataset version, key) or end it (outcome)."""
        with self._write() as conn:
            retrains.update(conn, retrain_id, changes)
        return retrains.get(self.conn, retrain_id)

    def list_retrains(self, task: str, limit: int = 100) -> list[RetrainRecord]:
        """The task's retrains, newest first."""
        return retrains.listed(self.conn, task, limit)

    def note(self, action: str, name: str | None, detail: dict[str, Any], actor: str | None = None) -> None:
        """Append an entry to the audit log for an action recorded elsewhere (a production review import,
        a retrain's start and outcome); `actor` defaults to user@host."""
        with self._write() as conn:
            audit(conn, action, name, detail, actor)

    def audit_log(
        self, name: str | None = None, limit: int = 100, actions: Sequence[str] | None = None
    ) -> list[AuditEntry]:
        """The newest `limit` audit entries (of `name`, or all; of `actions`, or any), newest first."""
        wanted = list(actions or [])
        only = f" AND action IN ({', '.join('?' * len(wanted))})" if wanted else ""
        rows = self.conn.execute(
            f"SELECT * FROM audit WHERE (name = ? OR ? IS NULL){only} ORDER BY id DESC LIMIT ?",
            (name, name, *wanted, limit),
        )
        return [audit_from_row(r) for r in rows]

    def verify(self) -> list[str]:
        """Every artifact the records point at is stored and re-hashes to its digest; problems, or []."""
        problems = []
        for digest, what in sorted(self.referenced_artifacts().items()):
            for problem in self.store.verify(digest):
                problems.append(f"{', '.join(what)}: {problem}")
        return problems

    def referenced_artifacts(self) -> dict[str, list[str]]:
        """digest -> what records point at it (sorted), for every stored artifact the registry knows."""
        users: dict[str, list[str]] = {}
        queries = [
            "SELECT digest AS d, kind || ' artifact' AS what FROM artifacts",
            "SELECT digest AS d, 'dataset ' || version AS what FROM datasets",
            "SELECT adapter_digest AS d, 'adapter of run ' || run_id AS what FROM runs WHERE adapter_digest NOT NULL",
            "SELECT digest AS d, 'eval report ' || id AS what FROM eval_reports",
            "SELECT adapter_digest AS d, 'adapter of ' || name || '@' || version AS what FROM releases",
            "SELECT eval_report_digest AS d, 'eval report of ' || name || '@' || version AS what FROM releases",
        ]
        for sql in queries:
            for r in self.conn.execute(sql):
                users.setdefault(r["d"], []).append(r["what"])
        return {digest: sorted(set(what)) for digest, what in users.items()}
