"""Run the console: blocking (`slmkit ui`) or on a background thread (tests, the bench).

Importing this module is cheap: uvicorn and FastAPI are imported when a console starts.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from slmkit.config import ProjectConfig, is_loopback_host
from slmkit.errors import ServeError
from slmkit.serve.server import _bind, _client_host


class ConsoleHandle:
    """A console running on a background thread of this process; `url` is its address."""

    def __init__(self, server: Any, thread: threading.Thread, host: str, port: int, app: Any) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server = server
        self._thread = thread

    @property
    def url(self) -> str:
        return f"http://{_client_host(self.host)}:{self.port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self.app.state.sessions.close()
        self.app.state.monitor_views.close()

    def __enter__(self) -> ConsoleHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_console(config: ProjectConfig, *, host: str = "127.0.0.1", port: int = 0) -> ConsoleHandle:
    """Start the console on a background thread; returns once it accepts requests (`port=0`: any free port)."""
    import uvicorn

    sock, app = _prepare(config, host, port, allow_network=False)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="slmkit-ui", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ServeError("the console did not start", hint="see the log above for uvicorn's reason")
        time.sleep(0.01)
    return ConsoleHandle(server, thread, host, sock.getsockname()[1], app)


def run_console(
    config: ProjectConfig, *, host: str = "127.0.0.1", port: int = 8800, allow_network: bool = False
) -> None:
    """Serve the console until interrupted (Ctrl-C); prints where to open it."""
    import uvicorn

    sock, app = _prepare(config, host, port, allow_network=allow_network)
    url = f"http://{_client_host(host)}:{sock.getsockname()[1]}/"
    print(f"slmkit ui: {config.task.name} at {url}   (read-only without a key; Ctrl-C stops)")
    print("  to act, log in with a key that holds a role: `slmkit serve keys add NAME --role reviewer --role releaser`")
    try:
        uvicorn.Server(uvicorn.Config(app, log_level="info", lifespan="off")).run(sockets=[sock])
    finally:
        app.state.sessions.close()
        app.state.monitor_views.close()


def _prepare(config: ProjectConfig, host: str, port: int, *, allow_network: bool) -> tuple[Any, Any]:
    from slmkit.ui.app import create_app
    from slmkit.ui.security import allowed_hosts

    if not is_loopback_host(host) and not allow_network:
        raise ServeError(
            f"refusing to serve the console on {host}: anyone who can reach it could read the project's releases, "
            "data cards and review items",
            hint="keep the default 127.0.0.1 (open it through an SSH tunnel), or pass --allow-network on purpose",
        )
    sock = _bind(host, port)
    return sock, create_app(config, allowed_hosts(host, sock.getsockname()[1]))
