"""Engine processes the gateway starts, watches and stops: vLLM's server, llama.cpp workers.

Each runs in its own process group, so stopping it stops whatever it started too (vLLM forks
an engine core). Three things keep a process from outliving the gateway: `stop()` on shutdown,
an atexit hook for an interpreter that exits without shutting down, and on Linux a
parent-death signal for a gateway that is killed outright.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from slmkit.errors import ServeError

log = logging.getLogger("slmkit.serve")

STOP_GRACE_S = 10.0  # SIGTERM, then SIGKILL after this long
MAX_RESTARTS = 3  # a process that keeps dying is refused, not restarted forever
LOG_TAIL_CHARS = 2000

_live: set[EngineProcess] = set()
_live_lock = threading.Lock()


class EngineUnavailable(ServeError):
    """An engine process died or never became ready (HTTP 503)."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EngineProcess:
    """One engine server process on a local port: started, health-checked, restarted, stopped.

    `argv` is the command line without the port; `port_args(port)` is appended at each start,
    on a fresh free port. Ready means GET `health_path` answers 200.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        port_args: Sequence[str] = ("--port", "{port}"),
        env: Mapping[str, str] | None = None,
        log_path: Path,
        health_path: str = "/health",
        start_timeout_s: float = 300.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port_args = list(port_args)
        self.env = dict(env or {})
        self.log_path = log_path
        self.health_path = health_path
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self.restarts = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the process and wait until it answers its health check (EngineUnavailable if not)."""
        with self._lock:
            self._start()

    def ensure(self) -> None:
        """Restart the process if it has died since the last call; refuse after MAX_RESTARTS."""
        if self.alive():
            return
        with self._lock:
            if self.alive():
                return
            code = self._proc.returncode if self._proc is not None else None
            if self.restarts >= MAX_RESTARTS:
                raise EngineUnavailable(
                    f"the {self.name} process exited (code {code}) and was already restarted {self.restarts} times",
                    hint=f"see its log {self.log_path}; restart the gateway once the cause is fixed",
                )
            self.restarts += 1
            log.warning("the %s process exited (code %s); restarting it (%d)", self.name, code, self.restarts)
            self._start()

    def stop(self) -> None:
        """SIGTERM its process group, SIGKILL after STOP_GRACE_S; idempotent."""
        with self._lock:
            proc, self._proc = self._proc, None
            with _live_lock:
                _live.discard(self)
            if proc is not None:
                _stop_group(proc)

    def _start(self) -> None:
        if self._proc is not None:
            _stop_group(self._proc)  # a dead leader may leave children in its group
        self.port = free_port()
        argv = self.argv + [a.format(port=self.port) for a in self.port_args]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
            out.flush()
            self._proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,  # its own process group: stop() reaches its children
                preexec_fn=_DIE_WITH_PARENT,
            )
        with _live_lock:
            _live.add(self)
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EngineUnavailable(
                    f"the {self.name} process exited with code {self._proc.returncode} while starting:\n"
                    f"{self.log_tail()}",
                    hint=f"its whole log is in {self.log_path}",
                )
            if self.healthy():
                return
            time.sleep(0.5)
        _stop_group(self._proc)
        raise EngineUnavailable(
            f"the {self.name} process did not become ready in {self.start_timeout_s:.0f}s:\n{self.log_tail()}",
            hint=f"its whole log is in {self.log_path}",
        )

    def healthy(self) -> bool:
        """Whether it answers its health check now."""
        try:
            status, _ = http_json(self.url + self.health_path, timeout=2.0)
        except OSError:
            return False
        return status == 200

    def log_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-LOG_TAIL_CHARS:]


def http_json(url: str, body: Any = None, *, timeout: float) -> tuple[int, Any]:
    """GET (or POST `body` as JSON) on a local engine: (status, parsed JSON or None); OSError when unreachable."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return status, {"error": {"message": raw[:500].decode(errors="replace")}}


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)  # the group id is the leader's pid (start_new_session)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline and group_members(proc.pid):
            proc.poll()  # reap the leader so it does not linger as a zombie
            time.sleep(0.05)
        if not group_members(proc.pid):
            break
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=1.0)


def group_members(pgid: int) -> list[int]:
    """Pids of the running processes of a process group, zombies left out (Linux /proc; elsewhere,
    whether the leader lives)."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":  # after the name: state, ppid, pgrp, ...
            members.append(int(entry.name))
    return members


def _parent_death_signal() -> Callable[[], None] | None:
    """A function for the child to run before exec: SIGTERM it when the process that started it dies.

    Linux's prctl(PR_SET_PDEATHSIG). It fires when the *thread* that forked exits, so engines are
    started from threads that live as long as the gateway (the main thread at start-up, or the
    engine's worker thread). libc is looked up here, in the parent: the child, forked from a
    process with threads, must not import or take locks before exec.
    """
    if sys.platform != "linux":
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def set_signal() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return set_signal


_DIE_WITH_PARENT = _parent_death_signal()


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        live = list(_live)
    for process in live:
        process.stop()
