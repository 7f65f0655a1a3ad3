"""Engine processes the gateway starts, watches and stops: vLLM's server, llama.cpp workers.

Only the gateway can talk to them. Each listens on a Unix socket in a folder of its own that
only the gateway's user may enter (mode 0700), never on a TCP port another local user could
reach, and also asks every request for a random token made for that process (vLLM's
VLLM_API_KEY, the worker's SLMKIT_ENGINE_TOKEN), passed in its environment, never on its
command line where `ps` would show it.

Each runs in its own process group (start_new_session), under a small `lifeline` parent that
holds the read end of a pipe whose write end only the gateway holds: when the gateway dies,
however it dies (SIGKILL included), the pipe closes and the lifeline stops the whole group.
No code runs between fork and exec in the gateway (no preexec_fn: unsafe in a threaded server).
`stop()` on shutdown and an atexit hook cover the orderly exits.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import logging
import os
import secrets
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from slmkit.errors import ServeError

log = logging.getLogger("slmkit.serve")

STOP_GRACE_S = 10.0  # SIGTERM, then SIGKILL after this long
MAX_RESTARTS = 3  # a process that keeps dying is refused, not restarted forever
LOG_TAIL_CHARS = 2000
LIFELINE = Path(__file__).with_name("lifeline.py")  # run by path: it needs nothing but the stdlib

_live: set[EngineProcess] = set()
_live_lock = threading.Lock()


class EngineUnavailable(ServeError):
    """An engine process died or never became ready (HTTP 503)."""


class RequestAbandoned(Exception):
    """The request to an engine was given up (its client went away); the connection was closed."""


class EngineProcess:
    """One engine server process on a private Unix socket: started, health-checked, restarted, stopped.

    `argv` is the command line without the socket; `socket_args` (with `{socket}`) is appended at
    each start. `token_env` names the environment variable the process reads its token from.
    Ready means GET `health_path` answers 200.
    """

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        socket_args: Sequence[str] = ("--uds", "{socket}"),
        token_env: str,
        env: Mapping[str, str] | None = None,
        log_path: Path,
        health_path: str = "/health",
        start_timeout_s: float = 300.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.socket_args = list(socket_args)
        self.token_env = token_env
        self.env = dict(env or {})
        self.log_path = log_path
        self.health_path = health_path
        self.start_timeout_s = start_timeout_s
        self.restarts = 0
        self.socket_path: Path | None = None
        self._token = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._lifeline_fd: int | None = None  # the pipe's write end: closed when this process dies
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The process group's leader (the lifeline), whose id is also the group's."""
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
            self._close_private()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float,
        abandon: Callable[[], bool] | None = None,
    ) -> tuple[int, Any]:
        """Send a request with the process's token: (status, parsed JSON or None).

        OSError when the process cannot be reached or does not answer within `timeout`;
        RequestAbandoned once `abandon()` turns True while waiting (the connection is closed, which
        tells the engine to stop working on it).
        """
        if self.socket_path is None:
            raise ConnectionRefusedError(f"the {self.name} process is not running")
        connection = _UnixHTTPConnection(str(self.socket_path), timeout)
        try:
            data = None if body is None else json.dumps(body).encode()
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self._token}"}
            connection.request(method, path, body=data, headers=headers)
            deadline = time.monotonic() + timeout
            while not select.select([connection.sock], [], [], 0.1)[0]:
                if abandon is not None and abandon():
                    raise RequestAbandoned(path)
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no answer from the {self.name} process in {timeout:g}s")
            response = connection.getresponse()
            status, raw = response.status, response.read()
        finally:
            connection.close()
        try:
            return status, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return status, {"error": {"message": raw[:500].decode(errors="replace")}}

    def _start(self) -> None:
        if self._proc is not None:
            _stop_group(self._proc)  # a dead leader may leave children in its group
        self._close_private()
        # A fresh folder, socket and token for every start: nothing a dead process knew stays valid.
        folder = Path(tempfile.mkdtemp(prefix="slmkit-engine-"))  # mode 0700: only this user enters
        self.socket_path = folder / "engine.sock"
        self._token = secrets.token_urlsafe(32)
        argv = self.argv + [a.format(socket=self.socket_path) for a in self.socket_args]
        read_fd, self._lifeline_fd = os.pipe()  # both ends not inherited, unless passed on purpose
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.log_path, "ab") as out:
                out.write(f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
                out.flush()
                self._proc = subprocess.Popen(
                    [sys.executable, str(LIFELINE), str(read_fd), "--", *argv],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env={**os.environ, **self.env, self.token_env: self._token},
                    start_new_session=True,  # its own process group: stop() reaches its children
                    pass_fds=(read_fd,),
                )
        finally:
            os.close(read_fd)
        with _live_lock:
            _live.add(self)
        self._wait_ready()

    def _close_private(self) -> None:
        if self._lifeline_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lifeline_fd)
            self._lifeline_fd = None
        if self.socket_path is not None:
            shutil.rmtree(self.socket_path.parent, ignore_errors=True)
            self.socket_path = None

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
            status, _ = self.request("GET", self.health_path, timeout=2.0)
        except OSError:
            return False
        return status == 200

    def log_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return text[-LOG_TAIL_CHARS:]


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (http.client speaks only TCP by itself)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.unix_path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


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


@atexit.register
def _stop_all() -> None:
    with _live_lock:
        live = list(_live)
    for process in live:
        process.stop()
