"""Releases, aliases and rollback, as SQL over an open registry connection.

`Registry` owns the connection and the transactions; the functions here that write expect to
run inside its `BEGIN IMMEDIATE`, so "read the current state, then change it" cannot interleave
with another process.
"""

from __future__ import annotations

import re
import sqlite3
from types import EllipsisType
from typing import Any

from slmkit.errors import RegistryError
from slmkit.registry.db import audit, now
from slmkit.registry.records import (
    Evidence,
    NewEvidence,
    Release,
    evidence_from_row,
    release_from_row,
    to_json,
    to_json_ordered,
)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_VERSION_TAG = re.compile(r"^v?(\d+)$")


def insert_release(
    conn: sqlite3.Connection,
    *,
    name: str,
    run_id: str,
    adapter_digest: str,
    base_model: dict[str, Any],
    dataset_version: str,
    gold_hash: str,
    eval_report_digest: str,
    config: dict[str, Any],
    note: str,
    alias: str | None,
    actor: str,
    provenance: dict[str, Any] | None = None,
    evidence: list[NewEvidence] | None = None,
    expected_parent: int | EllipsisType | None = ...,
) -> int:
    """Insert the next version of `name` and move `alias` to it; returns the new version.

    `expected_parent` is the version `alias` pointed at when the caller checked it (the
    release it rehearsed rolling back to); if the alias moved since, nothing is written.
    """
    check_name(name)
    if alias is not None:
        check_alias(alias)
    top = conn.execute("SELECT MAX(version) AS v FROM releases WHERE name = ?", (name,)).fetchone()["v"]
    version = (top or 0) + 1
    parent = alias_version(conn, name, alias) if alias else None
    if expected_parent is not ... and parent != expected_parent:
        raise RegistryError(
            f"{name}@{alias} moved from {expected_parent or 'nothing'} to {parent or 'nothing'} while this "
            "release was being checked; its rollback rehearsal was against the wrong release",
            hint="run `slmkit release` again: it rehearses against the release serving now",
        )
    conn.execute(
        "INSERT INTO releases (name, version, run_id, adapter_digest, base_model, dataset_version, gold_hash,"
        " eval_report_digest, config, parent_version, created_by, created_at, note, provenance)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            name,
            version,
            run_id,
            adapter_digest,
            to_json_ordered(base_model),
            dataset_version,
            gold_hash,
            eval_report_digest,
            to_json_ordered(config),
            parent,
            actor,
            now(),
            note,
            to_json(provenance or {}),
        ),
    )
    audit(
        conn,
        "release",
        name,
        {"version": version, "run_id": run_id, "parent": parent, "adapter": adapter_digest, "note": note},
        actor,
    )
    for item in evidence or []:
        insert_evidence(conn, name, version, item, actor=actor)
    if alias:
        move_alias(conn, name, alias, version, reason=f"release of version {version}", actor=actor)
    return version


def insert_evidence(conn: sqlite3.Connection, name: str, version: int, item: NewEvidence, *, actor: str) -> int:
    """Attach evidence to an existing release, audited; returns its row id."""
    if not _NAME.match(item.kind):
        raise RegistryError(f"{item.kind!r} cannot be an evidence kind", hint="use a word such as latency or review")
    get_release(conn, name, version)  # must exist
    cur = conn.execute(
        "INSERT INTO evidence (name, version, kind, passed, detail, created_at, created_by)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            name,
            version,
            item.kind,
            None if item.passed is None else int(item.passed),
            to_json(item.detail),
            now(),
            actor,
        ),
    )
    audit(
        conn,
        "evidence",
        name,
        {"version": version, "kind": item.kind, "status": item.status, "summary": item.detail.get("summary", "")},
        actor,
    )
    return int(cur.lastrowid or 0)


def _flag(passed: bool | None) -> int | None:
    return None if passed is None else int(passed)


def list_evidence(conn: sqlite3.Connection, name: str, version: int) -> list[Evidence]:
    rows = conn.execute("SELECT * FROM evidence WHERE name = ? AND version = ? ORDER BY id", (name, version))
    return [evidence_from_row(r) for r in rows]


def get_release(conn: sqlite3.Connection, name: str, version: int) -> Release:
    row = conn.execute("SELECT * FROM releases WHERE name = ? AND version = ?", (name, version)).fetchone()
    if row is None:
        known = existing_versions(conn, name)
        raise RegistryError(
            f"{name} has no version {version}; versions: {', '.join(map(str, known))}",
            hint="run `slmkit releases` to list them",
        )
    return _release(conn, row)


def list_releases(conn: sqlite3.Connection, name: str | None) -> list[Release]:
    rows = conn.execute(
        "SELECT * FROM releases WHERE name = ? OR ? IS NULL ORDER BY name, version", (name, name)
    ).fetchall()
    return [_release(conn, r) for r in rows]


def resolve(conn: sqlite3.Connection, ref: str, default_alias: str) -> Release:
    """`name` (its default alias), `name@3`, `name@v3` or `name@<alias>` -> that release."""
    name, at, tag = ref.strip().partition("@")
    if not name or "@" in tag or (at and not tag):
        raise RegistryError(
            f"cannot read model reference {ref!r}", hint="write name, name@3, name@v3 or name@production"
        )
    tag = tag or default_alias
    numbered = _VERSION_TAG.match(tag)
    if numbered:
        return get_release(conn, name, int(numbered[1]))
    version = alias_version(conn, name, tag)
    if version is None:
        known_versions = existing_versions(conn, name)
        known = ", ".join(f"{a} -> {v}" for a, v in aliases(conn, name).items()) or "none"
        raise RegistryError(
            f"{name} has no alias '{tag}'; aliases: {known}; versions: {', '.join(map(str, known_versions))}",
            hint=f"use {name}@<version>, or point the alias with `slmkit release --alias {tag}`",
        )
    return get_release(conn, name, version)


def rollback_target(conn: sqlite3.Connection, name: str, alias: str, to: int | None) -> tuple[int, int]:
    """(current, target) of a rollback of `name@alias`; RegistryError when there is none."""
    current = alias_version(conn, name, alias)
    if current is None:
        known = existing_versions(conn, name)
        raise RegistryError(
            f"nothing to roll back to: {name}@{alias} is not set; versions: {', '.join(map(str, known))}",
            hint=f"release with `slmkit release --alias {alias}`, or roll back another alias",
        )
    if to is None:
        to = get_release(conn, name, current).parent_version
        if to is None:
            raise RegistryError(
                f"nothing to roll back to: {name}@{current} has no earlier release behind '{alias}'",
                hint="release a fixed adapter instead",
            )
        return current, to
    get_release(conn, name, to)  # must exist
    if to == current:
        raise RegistryError(
            f"{name}@{alias} already points at version {to}; nothing to roll back",
            hint="pass another version, or none for the previous release",
        )
    return current, to


def move_alias(conn: sqlite3.Connection, name: str, alias: str, version: int, *, reason: str, actor: str) -> None:
    """Point `name@alias` at `version`, auditing where it pointed before."""
    previous = alias_version(conn, name, alias)
    conn.execute(
        "INSERT INTO aliases VALUES (?, ?, ?, ?) ON CONFLICT(name, alias) DO UPDATE SET "
        "version = excluded.version, updated_at = excluded.updated_at",
        (name, alias, version, now()),
    )
    audit(conn, "alias", name, {"alias": alias, "from": previous, "to": version, "reason": reason}, actor)


def aliases(conn: sqlite3.Connection, name: str) -> dict[str, int]:
    rows = conn.execute("SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", (name,))
    return {r["alias"]: r["version"] for r in rows}


def alias_version(conn: sqlite3.Connection, name: str, alias: str) -> int | None:
    row = conn.execute("SELECT version FROM aliases WHERE name = ? AND alias = ?", (name, alias)).fetchone()
    return int(row["version"]) if row else None


def existing_versions(conn: sqlite3.Connection, name: str) -> list[int]:
    """The versions of `name`; RegistryError listing the known names when there are none."""
    found = [
        r["version"] for r in conn.execute("SELECT version FROM releases WHERE name = ? ORDER BY version", (name,))
    ]
    if not found:
        names = [r["name"] for r in conn.execute("SELECT DISTINCT name FROM releases ORDER BY name")]
        raise RegistryError(
            f"no release named '{name}'; known: {', '.join(names) or 'none'}. Run `slmkit releases` to list them."
        )
    return found


def check_name(name: str) -> None:
    # A release name must survive `resolve("name@tag")`, URLs and file names.
    if not _NAME.match(name):
        raise RegistryError(
            f"cannot release under the name {name!r}",
            hint="use letters, digits, '.', '_' and '-' (the task name usually is)",
        )


def check_alias(alias: str) -> None:
    if not _NAME.match(alias) or _VERSION_TAG.match(alias):
        raise RegistryError(
            f"{alias!r} cannot be an alias",
            hint="use a word such as production or staging; `3` and `v3` already mean versions",
        )


def _release(conn: sqlite3.Connection, row: sqlite3.Row) -> Release:
    pointing = [
        r["alias"]
        for r in conn.execute(
            "SELECT alias FROM aliases WHERE name = ? AND version = ? ORDER BY alias", (row["name"], row["version"])
        )
    ]
    return release_from_row(row, pointing, list_evidence(conn, row["name"], row["version"]))
