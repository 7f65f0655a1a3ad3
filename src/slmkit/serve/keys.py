"""API keys: random tokens shown once, stored only as their sha256 in .slmkit/keys.db.

A key may be limited to some models: `support-tickets` allows every ref of that task
(`support-tickets@3`, `support-tickets@staging`); `support-tickets@3` allows exactly that ref.
Keys are enforced as soon as one has ever been created: revoking the last key locks every
client out, it never turns an authenticated server back into an open one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from slmkit.errors import ServeError
from slmkit.monitor.requests import apply_migrations, now

TOKEN_PREFIX = "slmkit-"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")

# Ordered, named migrations; a schema change is a new entry, never an edit of an applied one.
MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "0001_keys",
        [
            """CREATE TABLE keys (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL,
                token_sha256 TEXT NOT NULL UNIQUE,
                hint TEXT NOT NULL,
                models TEXT NOT NULL,
                created_at TEXT NOT NULL,
                revoked_at TEXT)""",
            # One active key per name; a revoked name may be reused.
            "CREATE UNIQUE INDEX keys_active_name ON keys(name) WHERE revoked_at IS NULL",
        ],
    ),
    # Access groups: the documents a key's requests may retrieve from (besides public ones).
    ("0002_key_groups", ["ALTER TABLE keys ADD COLUMN groups TEXT NOT NULL DEFAULT '[]'"]),
]


@dataclass(frozen=True)
class ApiKey:
    name: str
    models: tuple[str, ...]  # empty: every model
    hint: str  # the token's first characters, to tell keys apart; never enough to use one
    created_at: str
    revoked_at: str | None = None
    groups: tuple[str, ...] = ()  # access groups for retrieval; empty: public documents only

    def allows(self, model_ref: str) -> bool:
        """Whether this key may call `model_ref` (a task name, name@version or name@alias)."""
        if not self.models:
            return True
        name = model_ref.split("@", 1)[0]
        return any(allowed == model_ref or ("@" not in allowed and allowed == name) for allowed in self.models)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class KeyStore:
    """The keys table; one instance may be shared by threads. Every write is one transaction."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():  # owner-only from the first byte; SQLite gives its -wal the same mode
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()
        self._conn.execute("PRAGMA busy_timeout = 30000")
        self._conn.execute("PRAGMA journal_mode = WAL")
        with self._lock:
            apply_migrations(self._conn, MIGRATIONS)

    def add(self, name: str, models: list[str] | None = None, groups: list[str] | None = None) -> tuple[ApiKey, str]:
        """A new key and its token: the only time the token exists outside the client."""
        if not _NAME.match(name):
            raise ServeError(
                f"invalid key name '{name}'", hint="use 1-64 letters, digits, '.', '_' or '-', e.g. support-app"
            )
        allowed = tuple(dict.fromkeys(m.strip() for m in models or [] if m.strip()))
        member_of = tuple(dict.fromkeys(g.strip() for g in groups or [] if g.strip()))
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
        key = ApiKey(name, allowed, hint=token[: len(TOKEN_PREFIX) + 4], created_at=now(), groups=member_of)
        try:
            with self._lock:
                self._conn.execute(
                    "INSERT INTO keys (name, token_sha256, hint, models, created_at, groups) VALUES (?, ?, ?, ?, ?, ?)",
                    (name, token_hash(token), key.hint, json.dumps(list(allowed)), key.created_at,
                     json.dumps(list(member_of))),
                )  # fmt: skip
        except sqlite3.IntegrityError:
            raise ServeError(
                f"an active key named '{name}' already exists",
                hint=f"choose another name, or `slmkit serve keys revoke {name}` first",
            ) from None
        return key, token

    def revoke(self, name: str) -> ApiKey:
        """Revoke the active key called `name`; requests with it fail (401) from the next one on."""
        with self._lock:
            row = self._conn.execute(
                "UPDATE keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL RETURNING *", (now(), name)
            ).fetchone()
        if row is None:
            raise ServeError(f"no active key named '{name}'", hint="`slmkit serve keys list` shows the keys")
        return _key(row)

    def list(self) -> list[ApiKey]:
        """Every key ever created, oldest first (revoked ones have `revoked_at`)."""
        with self._lock:
            rows = self._conn.execute("SELECT * FROM keys ORDER BY id").fetchall()
        return [_key(row) for row in rows]

    def authenticate(self, token: str) -> ApiKey | None:
        """The key this token belongs to (revoked or not), or None for a token never issued."""
        with self._lock:
            row = self._conn.execute("SELECT * FROM keys WHERE token_sha256 = ?", (token_hash(token),)).fetchone()
        return None if row is None else _key(row)

    def enforced(self) -> bool:
        """Whether any key was ever created: from then on every request needs one."""
        with self._lock:
            return self._conn.execute("SELECT 1 FROM keys LIMIT 1").fetchone() is not None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _key(row: tuple) -> ApiKey:
    _, name, _, hint, models, created_at, revoked_at, groups = row
    return ApiKey(name, tuple(json.loads(models)), hint, created_at, revoked_at, tuple(json.loads(groups)))
