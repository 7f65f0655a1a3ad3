"""Who is visiting, and whether a POST may act: sessions, CSRF tokens, same-origin and Host checks.

- Reading needs nothing. Acting needs a session, opened by posting an API key (`slmkit serve keys
  add NAME --role reviewer`) to /login: the key's token is checked against keys.db, and only its
  sha256 is kept, in this process's memory, under a random session id sent back as an HttpOnly,
  SameSite=Strict cookie. Every request looks the key up again, so a revoked key stops acting at
  once, and a role is checked on every action.
- CSRF: an action's form carries the session's synchronizer token; the login form (no session
  yet) carries a token that must equal a SameSite=Strict cookie (double submit). Every POST must
  also come from this origin: its Origin header (or, without one, its Referer) must name the host
  the console serves.
- The Host header must be one the console serves under (DNS rebinding: another site's name that
  resolves to 127.0.0.1 is refused), and no action is ever taken on GET.
"""

from __future__ import annotations

import hmac
import secrets
import socket
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from slmkit.serve.keys import ROLES, ApiKey, KeyStore, token_hash

SESSION_COOKIE = "slmkit_session"
LOGIN_COOKIE = "slmkit_login_csrf"
SESSION_SECONDS = 8 * 3600


class Refused(Exception):
    """A request the console will not serve: `status` (400, 401, 403) and why, shown to the visitor."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Visitor:
    """Who is asking: a logged-in key (with its roles) or nobody; `csrf` is the session's token."""

    key: ApiKey | None = None
    session: str | None = None
    csrf: str = ""

    @property
    def name(self) -> str:
        return self.key.name if self.key else "visitor"

    @property
    def actor(self) -> str:
        """How the audit log and the evidence name this visitor: the key's name, via the console."""
        return f"{self.name}@console"

    def can(self, role: str) -> bool:
        return self.key is not None and self.key.has_role(role)


@dataclass
class _Session:
    token_sha256: str
    csrf: str
    expires: float
    flash: tuple[str, str, str | None] | None = None  # (done|error, text, review item) shown once


class Sessions:
    """Open sessions in memory (a restart logs everyone out); keys are looked up in keys.db each time."""

    def __init__(self, keys_path: Path) -> None:
        self.keys_path = keys_path
        self._open: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._keys: KeyStore | None = None  # opened on the first login: a reader never touches keys.db

    def _store(self) -> KeyStore:
        with self._lock:
            if self._keys is None:
                self._keys = KeyStore(self.keys_path)
            return self._keys

    def login(self, token: str) -> tuple[str, ApiKey]:
        """A new session for an active key's token; Refused(401) for a token never issued or revoked."""
        key = self._store().authenticate(token.strip())
        if key is None or key.revoked_at is not None:
            raise Refused(
                401, "that key is unknown or revoked; ask for one with `slmkit serve keys add NAME --role ...`"
            )
        session = secrets.token_urlsafe(32)
        with self._lock:
            self._expire()
            self._open[session] = _Session(
                token_hash(token.strip()), secrets.token_urlsafe(32), _now() + SESSION_SECONDS
            )
        return session, key

    def visitor(self, session: str | None) -> Visitor:
        """The visitor behind a session cookie: its key while active, else an anonymous reader."""
        if not session:
            return Visitor()
        with self._lock:
            found = self._open.get(session)
            if found is None or found.expires < _now():
                self._open.pop(session, None)
                return Visitor()
        key = self._store().by_token_hash(found.token_sha256)
        if key is None or key.revoked_at is not None:
            self.logout(session)
            return Visitor()
        return Visitor(key, session, found.csrf)

    def set_flash(self, session: str | None, kind: str, text: str, item: str | None = None) -> None:
        """Keep what an action did (or why it was refused) for the page the browser is sent to next."""
        with self._lock:
            found = self._open.get(session or "")
            if found is not None:
                found.flash = (kind, text, item)

    def pop_flash(self, session: str | None) -> tuple[str, str, str | None] | None:
        with self._lock:
            found = self._open.get(session or "")
            if found is None:
                return None
            flash, found.flash = found.flash, None
            return flash

    def logout(self, session: str | None) -> None:
        with self._lock:
            self._open.pop(session or "", None)

    def close(self) -> None:
        with self._lock:
            if self._keys is not None:
                self._keys.close()
                self._keys = None

    def _expire(self) -> None:
        now = _now()
        for session in [s for s, found in self._open.items() if found.expires < now]:
            del self._open[session]


def require_role(visitor: Visitor, role: str) -> None:
    """Refused(403) unless the visitor's key holds `role`."""
    if visitor.key is None:
        raise Refused(403, f"log in with a key that holds the {role} role to {ROLES[role]}")
    if not visitor.can(role):
        raise Refused(403, f"key {visitor.key.name} does not hold the {role} role (it may {ROLES[role]})")


def check_csrf(expected: str, submitted: str | None) -> None:
    """Refused(403) unless the form's token equals the one this session (or login cookie) holds."""
    if not expected or not submitted or not hmac.compare_digest(expected, submitted):
        raise Refused(403, "the form's CSRF token is missing or wrong: reload the page and submit it again")


def check_origin(host: str, origin: str | None, referer: str | None) -> None:
    """Refused(403) unless the POST names this console as its origin (Origin, else Referer)."""
    own = f"http://{host}"
    if origin:
        if origin != own:
            raise Refused(403, f"cross-origin request refused (Origin {origin}, this console is {own})")
        return
    if referer:
        parts = urlsplit(referer)
        if f"{parts.scheme}://{parts.netloc}" != own:
            raise Refused(403, f"cross-origin request refused (Referer from {parts.netloc or '?'})")
        return
    raise Refused(403, "request without Origin or Referer refused: actions are taken only from the console's pages")


def check_host(host: str | None, allowed: Iterable[str]) -> None:
    """Refused(400) for a Host header the console does not serve under (DNS rebinding)."""
    if host not in set(allowed):
        raise Refused(400, f"unexpected Host header {host!r}; open the console at the address it printed")


def allowed_hosts(host: str, port: int) -> set[str]:
    """The Host headers a browser sends for this console: the bound address, and loopback's names."""
    names = {host if ":" not in host else f"[{host.strip('[]')}]"}
    if host in ("127.0.0.1", "localhost", "::1", "[::1]", "0.0.0.0", "::"):
        names |= {"127.0.0.1", "localhost", "[::1]"}
    if host in ("0.0.0.0", "::"):  # every interface: the names this machine is reached by
        names |= {socket.gethostname(), socket.getfqdn()}
    return {f"{name}:{port}" for name in names}


def new_token() -> str:
    return secrets.token_urlsafe(32)


def _now() -> float:
    return time.monotonic()
