"""The registry: what was built, trained, evaluated and released, and who moved which alias."""

from __future__ import annotations

import getpass
import json
import re
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmkit.errors import RegistryError
from slmkit.registry.db import connect, now
from slmkit.registry.store import ObjectStore


@dataclass(frozen=True)
class DatasetRecord:
    version: str
    task: str
    digest: str
    gold_hash: str
    counts: dict[str, Any]
    meta: dict[str, Any]
    created_at: str


@dataclass(frozen=True)
class GoldLock:
    task: str
    gold_hash: str
    dataset_version: str
    locked_at: str
    locked_by: str


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    task: str
    dataset_version: str
    base_model: dict[str, Any]
    status: str
    adapter_digest: str | None
    metrics: dict[str, Any]
    config: dict[str, Any]
    created_at: str
    finished_at: str | None
    error: str | None


@dataclass(frozen=True)
class EvalRecord:
    id: int
    run_id: str | None
    task: str
    digest: str
    gold_hash: str
    passed: bool
    summary: dict[str, Any]
    created_at: str


@dataclass(frozen=True)
class Release:
    name: str
    version: int
    run_id: str
    adapter_digest: str
    base_model: dict[str, Any]
    dataset_version: str
    gold_hash: str
    eval_report_digest: str
    config: dict[str, Any]
    parent_version: int | None
    created_by: str
    created_at: str
    note: str
    aliases: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class AuditEntry:
    id: int
    ts: str
    actor: str
    action: str
    name: str | None
    detail: dict[str, Any]


def default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _json(value: Any) -> str:
    # Key order is kept: in a config it carries meaning (a schema's property order is the
    # order the model writes its answer in).
    return json.dumps(value, default=str)


_REF = re.compile(r"^(?P<name>[^@\s]+)(?:@(?P<tag>[^@\s]+))?$")


class Registry:
    """registry.db + objects/ under a project's .slmkit directory."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        self.store = ObjectStore(self.home / "objects")
        self.conn = connect(self.home / "registry.db")

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction; IMMEDIATE so concurrent writers queue instead of failing."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise

    def _audit(self, conn: sqlite3.Connection, action: str, name: str | None, detail: dict[str, Any],
               actor: str | None = None) -> None:
        conn.execute("INSERT INTO audit (ts, actor, action, name, detail) VALUES (?, ?, ?, ?, ?)",
                     (now(), actor or default_actor(), action, name, _json(detail)))

    # --- artifacts and datasets -----------------------------------------------------------

    def record_artifact(self, digest: str, kind: str, size: int, meta: dict[str, Any] | None = None) -> None:
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO artifacts VALUES (?, ?, ?, ?, ?)",
                         (digest, kind, size, now(), _json(meta or {})))

    def record_dataset(self, version: str, task: str, digest: str, gold_hash: str, counts: dict[str, Any],
                       meta: dict[str, Any]) -> DatasetRecord:
        with self._write() as conn:
            conn.execute("INSERT OR IGNORE INTO artifacts VALUES (?, 'dataset', 0, ?, '{}')", (digest, now()))
            exists = conn.execute("SELECT 1 FROM datasets WHERE version = ?", (version,)).fetchone()
            if not exists:
                conn.execute("INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (version, task, digest, gold_hash, _json(counts), _json(meta), now()))
                self._audit(conn, "dataset", task, {"version": version, "gold_hash": gold_hash})
        return self.get_dataset(version)

    def get_dataset(self, version: str | None = None, task: str | None = None) -> DatasetRecord:
        if version is not None:
            row = self.conn.execute("SELECT * FROM datasets WHERE version = ?", (version,)).fetchone()
            if row is None:
                known = [r["version"] for r in self.conn.execute("SELECT version FROM datasets ORDER BY rowid")]
                raise RegistryError(f"no dataset version '{version}'; known: {', '.join(known) or 'none'}")
        else:
            row = self.conn.execute(
                "SELECT * FROM datasets WHERE task = ? OR ? IS NULL ORDER BY created_at DESC, rowid DESC LIMIT 1",
                (task, task)).fetchone()
            if row is None:
                raise RegistryError(f"no dataset built yet for task {task}", hint="run `slmkit data build`")
        return _dataset(row)

    def list_datasets(self, task: str) -> list[DatasetRecord]:
        rows = self.conn.execute("SELECT * FROM datasets WHERE task = ? ORDER BY created_at, rowid", (task,))
        return [_dataset(r) for r in rows]

    def lock_gold(self, task: str, gold_hash: str, dataset_version: str) -> GoldLock:
        with self._write() as conn:
            current = conn.execute("SELECT gold_hash FROM gold_locks WHERE task = ?", (task,)).fetchone()
            if current and current["gold_hash"] != gold_hash:
                raise RegistryError(f"task {task} already has a locked gold set (sha256 {current['gold_hash'][:12]})",
                                    hint="rebuild with `slmkit data build --new-gold` to replace it")
            if not current:
                conn.execute("INSERT INTO gold_locks VALUES (?, ?, ?, ?, ?)",
                             (task, gold_hash, dataset_version, now(), default_actor()))
                self._audit(conn, "gold_lock", task, {"gold_hash": gold_hash, "dataset_version": dataset_version})
        lock = self.gold_lock(task)
        assert lock is not None
        return lock

    def gold_lock(self, task: str) -> GoldLock | None:
        row = self.conn.execute("SELECT * FROM gold_locks WHERE task = ?", (task,)).fetchone()
        return GoldLock(**dict(row)) if row else None

    def unlock_gold(self, task: str, reason: str = "") -> None:
        with self._write() as conn:
            row = conn.execute("SELECT gold_hash FROM gold_locks WHERE task = ?", (task,)).fetchone()
            conn.execute("DELETE FROM gold_locks WHERE task = ?", (task,))
            self._audit(conn, "gold_unlock", task, {"gold_hash": row["gold_hash"] if row else None, "reason": reason})

    # --- runs and eval reports ------------------------------------------------------------

    def start_run(self, run_id: str, task: str, dataset_version: str, base_model: dict[str, Any],
                  config: dict[str, Any]) -> None:
        with self._write() as conn:
            conn.execute(
                "INSERT INTO runs (run_id, task, dataset_version, base_model, status, config, created_at) "
                "VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (run_id, task, dataset_version, _json(base_model), _json(config), now()))

    def finish_run(self, run_id: str, adapter_digest: str, metrics: dict[str, Any], status: str = "completed") -> None:
        with self._write() as conn:
            conn.execute("UPDATE runs SET status = ?, adapter_digest = ?, metrics = ?, finished_at = ? WHERE run_id = ?",
                         (status, adapter_digest, _json(metrics), now(), run_id))

    def fail_run(self, run_id: str, reason: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE runs SET status = 'failed', error = ?, finished_at = ? WHERE run_id = ?",
                         (reason[:2000], now(), run_id))

    def get_run(self, run_id: str | None = None, task: str | None = None) -> RunRecord:
        if run_id is not None:
            row = self.conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                recent = [r["run_id"] for r in self.conn.execute(
                    "SELECT run_id FROM runs ORDER BY created_at DESC LIMIT 5")]
                raise RegistryError(f"no training run '{run_id}'; recent runs: {', '.join(recent) or 'none'}")
            if row["status"] != "completed":
                raise RegistryError(f"run {run_id} is {row['status']}, not completed"
                                    + (f": {row['error']}" if row["error"] else ""), hint="train again")
            return _run(row)
        row = self.conn.execute(
            "SELECT * FROM runs WHERE status = 'completed' AND (task = ? OR ? IS NULL) "
            "ORDER BY created_at DESC, rowid DESC LIMIT 1", (task, task)).fetchone()
        if row is None:
            raise RegistryError(f"no completed training run for task {task}", hint="run `slmkit train`")
        return _run(row)

    def list_runs(self, task: str) -> list[RunRecord]:
        rows = self.conn.execute("SELECT * FROM runs WHERE task = ? ORDER BY created_at, rowid", (task,))
        return [_run(r) for r in rows]

    def record_eval(self, task: str, run_id: str | None, digest: str, gold_hash: str, passed: bool,
                    summary: dict[str, Any]) -> EvalRecord:
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO eval_reports (run_id, task, digest, gold_hash, passed, summary, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)", (run_id, task, digest, gold_hash, int(passed), _json(summary), now()))
            self._audit(conn, "eval", task, {"run_id": run_id, "report": digest, "passed": passed})
            row = conn.execute("SELECT * FROM eval_reports WHERE id = ?", (cur.lastrowid,)).fetchone()
        return _eval(row)

    def latest_eval(self, run_id: str) -> EvalRecord | None:
        row = self.conn.execute("SELECT * FROM eval_reports WHERE run_id = ? ORDER BY id DESC LIMIT 1",
                                (run_id,)).fetchone()
        return _eval(row) if row else None

    # --- releases and aliases -------------------------------------------------------------

    def create_release(self, *, name: str, run_id: str, adapter_digest: str, base_model: dict[str, Any],
                       dataset_version: str, gold_hash: str, eval_report_digest: str, config: dict[str, Any],
                       note: str = "", alias: str | None = "production", actor: str | None = None) -> Release:
        """Record a release (next version of `name`) and move `alias` to it, atomically."""
        actor = actor or default_actor()
        with self._write() as conn:
            top = conn.execute("SELECT MAX(version) AS v FROM releases WHERE name = ?", (name,)).fetchone()["v"]
            version = (top or 0) + 1
            parent = None
            if alias:
                row = conn.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
                parent = row["version"] if row else None
            conn.execute(
                "INSERT INTO releases (name, version, run_id, adapter_digest, base_model, dataset_version, gold_hash,"
                " eval_report_digest, config, parent_version, created_by, created_at, note)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (name, version, run_id, adapter_digest, _json(base_model), dataset_version, gold_hash,
                 eval_report_digest, _json(config), parent, actor, now(), note))
            self._audit(conn, "release", name, {"version": version, "run_id": run_id, "adapter": adapter_digest,
                                                "note": note}, actor)
            if alias:
                self._move_alias(conn, name, alias, version, parent, f"release {version}", actor)
        return self.get_release(name, version)

    def _move_alias(self, conn: sqlite3.Connection, name: str, alias: str, version: int, previous: int | None,
                    reason: str, actor: str | None = None) -> None:
        conn.execute("INSERT INTO aliases VALUES (?, ?, ?, ?) ON CONFLICT(name, alias) DO UPDATE SET "
                     "version = excluded.version, updated_at = excluded.updated_at", (name, alias, version, now()))
        self._audit(conn, "alias", name, {"alias": alias, "from": previous, "to": version, "reason": reason}, actor)

    def get_release(self, name: str, version: int) -> Release:
        row = self.conn.execute("SELECT * FROM releases WHERE name = ? AND version = ?", (name, version)).fetchone()
        if row is None:
            versions = [r["version"] for r in self.conn.execute(
                "SELECT version FROM releases WHERE name = ? ORDER BY version", (name,))]
            if not versions:
                raise self._unknown_name(name)
            raise RegistryError(f"{name} has no version {version}; versions: {', '.join(map(str, versions))}")
        return self._release(row)

    def list_releases(self, name: str | None = None) -> list[Release]:
        rows = self.conn.execute("SELECT * FROM releases WHERE name = ? OR ? IS NULL ORDER BY name, version",
                                 (name, name))
        return [self._release(r) for r in rows]

    def aliases(self, name: str) -> dict[str, int]:
        rows = self.conn.execute("SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", (name,))
        return {r["alias"]: r["version"] for r in rows}

    def resolve(self, ref: str, default_alias: str = "production") -> Release:
        """`name` (its default alias), `name@3`, `name@v3` or `name@<alias>` -> that release."""
        match = _REF.match(ref.strip())
        if not match:
            raise RegistryError(f"cannot read model reference {ref!r}; write name, name@3 or name@production")
        name, tag = match["name"], match["tag"] or default_alias
        if tag.isdigit() or (tag[:1] == "v" and tag[1:].isdigit()):
            return self.get_release(name, int(tag.lstrip("v")))
        row = self.conn.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, tag)).fetchone()
        if row is None:
            if not self.conn.execute("SELECT 1 FROM releases WHERE name = ?", (name,)).fetchone():
                raise self._unknown_name(name)
            known = ", ".join(f"{a} -> {v}" for a, v in self.aliases(name).items()) or "none"
            raise RegistryError(f"{name} has no alias '{tag}'; aliases: {known}",
                                hint=f"use {name}@<version> or move an alias with `slmkit release`")
        return self.get_release(name, row["version"])

    def set_alias(self, name: str, alias: str, version: int, reason: str = "") -> None:
        self.get_release(name, version)  # must exist
        with self._write() as conn:
            row = conn.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
            self._move_alias(conn, name, alias, version, row["version"] if row else None, reason or "set")

    def rollback(self, name: str, alias: str = "production", to: int | None = None,
                 reason: str = "") -> tuple[int, int]:
        """Move `alias` to the parent of the release it points at (or to `to`)."""
        with self._write() as conn:
            row = conn.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
            if row is None:
                if not conn.execute("SELECT 1 FROM releases WHERE name = ?", (name,)).fetchone():
                    raise self._unknown_name(name)
                raise RegistryError(f"{name}@{alias} is not set, so there is nothing to roll back")
            current = row["version"]
            if to is None:
                parent = conn.execute("SELECT parent_version FROM releases WHERE name = ? AND version = ?",
                                      (name, current)).fetchone()["parent_version"]
                if parent is None:
                    raise RegistryError(f"nothing to roll back to: {name}@{current} has no earlier release "
                                        f"behind {alias}", hint="release a fixed adapter instead")
                to = parent
            elif not conn.execute("SELECT 1 FROM releases WHERE name = ? AND version = ?", (name, to)).fetchone():
                raise RegistryError(f"{name} has no version {to}", hint="`slmkit releases` lists them")
            self._audit(conn, "rollback", name, {"alias": alias, "from": current, "to": to, "reason": reason})
            self._move_alias(conn, name, alias, to, current, reason or "rollback")
        return current, to

    def audit_log(self, name: str | None = None, limit: int = 100) -> list[AuditEntry]:
        rows = self.conn.execute("SELECT * FROM audit WHERE name = ? OR ? IS NULL ORDER BY id DESC LIMIT ?",
                                 (name, name, limit))
        return [AuditEntry(r["id"], r["ts"], r["actor"], r["action"], r["name"], json.loads(r["detail"]))
                for r in rows]

    def verify(self) -> list[str]:
        """Every artifact the records point at exists and re-hashes to its name."""
        digests: dict[str, str] = {}
        for r in self.conn.execute("SELECT version, digest FROM datasets"):
            digests[r["digest"]] = f"dataset {r['version']}"
        for r in self.conn.execute("SELECT run_id, adapter_digest FROM runs WHERE adapter_digest IS NOT NULL"):
            digests[r["adapter_digest"]] = f"adapter of run {r['run_id']}"
        for r in self.conn.execute("SELECT name, version, eval_report_digest FROM releases"):
            digests[r["eval_report_digest"]] = f"eval report of {r['name']}@{r['version']}"
        return [f"{what}: {p}" for digest, what in sorted(digests.items()) for p in self.store.verify(digest)]

    def _release(self, row: sqlite3.Row) -> Release:
        data = dict(row)
        data.pop("id")
        aliases = [r["alias"] for r in self.conn.execute(
            "SELECT alias FROM aliases WHERE name = ? AND version = ? ORDER BY alias", (data["name"], data["version"]))]
        return Release(**{**data, "base_model": json.loads(data["base_model"]), "config": json.loads(data["config"]),
                          "aliases": aliases})

    def _unknown_name(self, name: str) -> RegistryError:
        names = [r["name"] for r in self.conn.execute("SELECT DISTINCT name FROM releases ORDER BY name")]
        return RegistryError(f"no release named '{name}'; known: {', '.join(names) or 'none'}",
                             hint="run `slmkit releases` to list them")


def _dataset(row: sqlite3.Row) -> DatasetRecord:
    d = dict(row)
    return DatasetRecord(**{**d, "counts": json.loads(d["counts"]), "meta": json.loads(d["meta"])})


def _run(row: sqlite3.Row) -> RunRecord:
    d = dict(row)
    return RunRecord(**{**d, "base_model": json.loads(d["base_model"]), "metrics": json.loads(d["metrics"]),
                        "config": json.loads(d["config"])})


def _eval(row: sqlite3.Row) -> EvalRecord:
    d = dict(row)
    return EvalRecord(**{**d, "passed": bool(d["passed"]), "summary": json.loads(d["summary"])})
