"""API keys: random tokens shown once, stored only as their sha256 in .slmkit/keys.db.

A key may be limited to some models: `support-tickets` allows every ref of that task
(`support-tickets@3`, `support-tickets@staging`); `support-tickets@3` allows exactly that ref.
Keys are enforced as soon as one has ever been created: revoking the last key locks every
client out, it never turns an authenticated server back into an open one.

A key may also hold roles for the web console (`slmkit ui`): `reviewer` answers review items and
signs a review off, `releaser` promotes and rolls back aliases. A key without roles (every key
made before roles existed) reads the console like a visitor and calls the API as before.
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
ROLES = {
    "reviewer": "answer review items and sign a release's review off in the console",
    "releaser": "promote or roll back an alias in the console",
}
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
    # Console roles; keys made before this hold none and keep working for the API.
    ("0003_roles", ["ALTER TABLE keys ADD COLUMN roles TEXT NOT NULL DEFAULT '[]'"]),
]


@dataclass(frozen=True)
class ApiKey:
    name: str
    models: tuple[str, ...]  # empty: every model
    hint: str  # the token's first characters, to tell keys apart; never enough to use one
    created_at: str
    revoked_at: str | None = None
    groups: tuple[str, ...] = ()  # access groups for retrieval; empty: public documents only
    roles: tuple[str, ...] = ()  # console roles (ROLES); empty: read-only in the console

    def has_role(self, role: str) -> bool:
        """Whether this key, while active, may act as `role` in the console."""
        return self.revoked_at is None and role in self.roles

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

    def add(
        self,
        name: str,
        models: list[str] | None = None,
        groups: list[str] | None = None,
        *,
        roles: list[str] | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key and its token: the only time the token exists outside the client."""
        if not _NAME.match(name):
            raise ServeError(
                f"invalid key name '{name}'", hint="use 1-64 letters, digits, '.', '_' or '-', e.g. support-app"
            )
        allowed = tuple(dict.fromkeys(m.strip() for m in models or [] if m.strip()))
        member_of = tuple(dict.fromkeys(g.strip() for g in groups or [] if g.strip()))
        held = tuple(dict.fromkeys(r.strip() for r in roles or [] if r.strip()))
        unknown = [r for r in held if r not in ROLES]
        if unknown:
            raise ServeError(
                f"unknown role(s) {', '.join(unknown)} for key '{name}'",
                hint="roles: " + "; ".join(f"{r} ({what})" for r, what in ROLES.items()),
            )
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
        key = ApiKey(name, allowed, hint=token[: len(TOKEN_PREFIX) + 4], created_at=now(), groups=member_of, roles=held)
        try:
            with self._lock:
                self._conn.execute(
                    "INSERT INTO keys (name, token_sha256, hint, models, created_at, groups, roles)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (name, token_hash(token), key.hint, json.dumps(list(allowed)), key.created_at,
                     json.dumps(list(member_of)), json.dumps(held)),
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
                f"UPDATE keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL RETURNING {_COLUMNS}",
                (now(), name),
            ).fetchone()
        if row is None:
            raise ServeError(f"no active key named '{name}'", hint="`slmkit serve keys list` shows the keys")
        return _key(row)

    def list(self) -> list[ApiKey]:
        """Every key ever created, oldest first (revoked ones have `revoked_at`)."""
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM keys ORDER BY id").fetchall()
        return [_key(row) for row in rows]

    def authenticate(self, token: str) -> ApiKey | None:
        """The key this token belongs to (revoked or not), or None for a token never issued."""
        return self.by_token_hash(token_hash(token))

    def by_token_hash(self, digest: str) -> ApiKey | None:
        """The key whose token hashes to `digest` (revoked or not); the console's session keeps only this."""
        with self._lock:
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM keys WHERE token_sha256 = ?", (digest,)).fetchone()
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


_COLUMNS = "name, hint, models, created_at, revoked_at, groups, roles"


def _key(row: tuple) -> ApiKey:
    name, hint, models, created_at, revoked_at, groups, roles = row
    return ApiKey(
        name,
        tuple(json.loads(models)),
        hint,
        created_at,
        revoked_at,
        tuple(json.loads(groups)),
        tuple(json.loads(roles)),
    )
