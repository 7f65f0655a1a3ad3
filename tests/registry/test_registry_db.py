"""registry.db: WAL, ordered named migrations applied once, an append-only audit log."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from slmkit.registry import Registry, db


def _migrations(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return [tuple(r) for r in conn.execute("SELECT name, applied_at FROM schema_migrations ORDER BY rowid")]


def test_migrations_apply_once_and_are_recorded(tmp_path: Path) -> None:
    path = tmp_path / "registry.db"
    conn = db.connect(path)
    first = _migrations(conn)
    assert [name for name, _ in first] == [name for name, _ in db.MIGRATIONS]
    assert first[0][0] == "0001_initial"
    assert first[0][1].endswith("Z")
    datetime.fromisoformat(first[0][1].replace("Z", "+00:00"))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    conn.close()

    again = db.connect(path)
    assert db.migrate(again) == []
    assert _migrations(again) == first, "reopening must not re-apply or re-stamp a migration"


def test_a_new_migration_applies_alone_and_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "registry.db"
    db.connect(path).close()
    shipped = [name for name, _ in db.MIGRATIONS]
    monkeypatch.setattr(db, "MIGRATIONS", [*db.MIGRATIONS, ("9999_extra", "CREATE TABLE extra (x INTEGER);")])

    conn = db.connect(path)

    assert [name for name, _ in _migrations(conn)] == [*shipped, "9999_extra"]
    conn.execute("INSERT INTO extra VALUES (1)")


def test_a_failing_migration_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "registry.db"
    db.connect(path).close()
    shipped = [name for name, _ in db.MIGRATIONS]
    bad = ("9999_bad", "CREATE TABLE half (x INTEGER);\nINSERT INTO no_such_table VALUES (1);")
    monkeypatch.setattr(db, "MIGRATIONS", [*db.MIGRATIONS, bad])

    with pytest.raises(sqlite3.OperationalError, match="no_such_table"):
        db.connect(path)

    conn = sqlite3.connect(path)
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchone() is None
    assert [r[0] for r in conn.execute("SELECT name FROM schema_migrations")] == shipped


def test_audit_rows_cannot_be_updated_or_deleted(tmp_path: Path) -> None:
    with Registry(tmp_path / ".slmkit") as registry:
        registry.lock_gold("tickets", "g" * 64, "ds-1")
        assert [e.action for e in registry.audit_log("tickets")] == ["gold_lock"]

    # Even a plain sqlite3 client, outside slmkit, cannot rewrite history.
    conn = sqlite3.connect(tmp_path / ".slmkit" / "registry.db")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("UPDATE audit SET actor = 'someone-else'")
    with pytest.raises(sqlite3.DatabaseError, match="append-only"):
        conn.execute("DELETE FROM audit")
    assert conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == 1


def test_the_registry_never_imports_torch() -> None:
    modules = "slmkit.registry, slmkit.registry.checklist, slmkit.registry.describe, slmkit.registry.publish"
    code = f"import sys, {modules}; print(sorted({{'torch', 'transformers', 'peft'}} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
