"""Run the gateway: blocking (`slmkit serve`) or on a background thread (the demo, tests).

Importing this module is cheap: uvicorn, FastAPI and torch are imported when a server starts.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from slmkit.config import ProjectConfig, is_loopback_host
from slmkit.errors import ServeError

if TYPE_CHECKING:
    from slmkit.registry import Release
    from slmkit.serve.service import ChatService

log = logging.getLogger("slmkit.serve")


class ServerHandle:
    """A server running on a background thread; `url` is the OpenAI base URL (ends in /v1)."""

    def __init__(self, service: ChatService, server: Any, thread: threading.Thread, host: str, port: int) -> None:
        self.service = service
        self.host = host
        self.port = port
        self._server = server
        self._thread = thread

    @property
    def url(self) -> str:
        return f"http://{_client_host(self.host)}:{self.port}/v1"

    def stop(self) -> None:
        """Stop accepting requests, finish those in flight, flush the request log."""
        self._server.should_exit = True
        self._thread.join(timeout=30)
        self.service.close()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    config: ProjectConfig, *, port: int = 0, release: str | None = None, host: str = "127.0.0.1"
) -> ServerHandle:
    """Start a real uvicorn server on a background thread of this process; returns once it accepts requests.

    `port=0` picks a free port (see `.port`). The default release of the project's task is
    loaded before this returns, so the first request does not pay for it.
    """
    import uvicorn

    service, app, _ = _prepare(config, release, host)
    try:
        sock = _bind(host, port)
    except ServeError:
        service.close()
        raise
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="slmkit-http", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            service.close()
            raise ServeError("the HTTP server did not start", hint="see the log above for uvicorn's reason")
        time.sleep(0.01)
    return ServerHandle(service, server, thread, host, sock.getsockname()[1])


def run_server(
    config: ProjectConfig, *, host: str | None = None, port: int | None = None, release: str | None = None
) -> None:
    """Serve the project's releases until interrupted (Ctrl-C); prints the URL and what it serves."""
    import uvicorn

    host = host or config.serve.host
    service, app, default = _prepare(config, release, host)
    try:
        sock = _bind(host, config.serve.port if port is None else port)
        url = f"http://{_client_host(host)}:{sock.getsockname()[1]}/v1"
        base = default.base_model.get("spec", "?")
        print(f"slmkit serve: {config.task.name} -> {default.ref} ({service.default_release}) on {base}")
        print(f"  models: {', '.join(card['id'] for card in service.model_cards())}")
        print(f"  OpenAI base URL: {url}   (health: {url.removesuffix('/v1')}/health; Ctrl-C stops)")
        active = [key for key in service.keys.list() if key.revoked_at is None]
        if service.keys_enforced():
            print(f"  API keys: required ({len(active)} active; `slmkit serve keys list`)")
        else:
            print("  API keys: off (none created; `slmkit serve keys add NAME` turns them on)")
        if host in ("0.0.0.0", "::"):
            print(f"  listening on every interface ({host}): anyone who can reach this machine can call it")
        for line in service.monitoring.lines():
            print(line)
        server = uvicorn.Server(uvicorn.Config(app, log_level="info", lifespan="off"))
        server.run(sockets=[sock])
    finally:
        service.close()


def _prepare(config: ProjectConfig, release: str | None, host: str) -> tuple[ChatService, Any, Release]:
    """The service (default release loaded and checked) and its app; ServeError when there is nothing to
    serve, or when it would be an open API on the network."""
    from slmkit.serve.app import create_app
    from slmkit.serve.protocol import APIError
    from slmkit.serve.service import ChatService

    service = ChatService(config, default_release=release)
    try:
        _check_exposure(service, host)
        name = config.task.name
        if not service.registry.list_releases(name):
            raise ServeError(
                f"nothing to serve: {name} has no release yet",
                hint="run `slmkit run` (or `slmkit eval` then `slmkit release`) first",
            )
        try:
            default = service.warm(name)
        except APIError as exc:
            raise ServeError(
                f"cannot serve {name}@{service.default_release}: {exc.message}",
                hint="pick a release with --release (an alias or a version number)",
            ) from None
        return service, create_app(service), default
    except BaseException:
        service.close()
        raise


def _check_exposure(service: ChatService, host: str) -> None:
    """Refuse an API without keys on a non-loopback host, unless serve.allow_open_network says it is meant."""
    serve = service.config.serve
    if service.keys.enforced():
        return
    if serve.require_keys:
        raise ServeError(
            "serve.require_keys is on but no API key exists, so every request would be refused",
            hint="create one with `slmkit serve keys add NAME` (it prints the token once)",
        )
    if is_loopback_host(host):
        return
    if not serve.allow_open_network:
        raise ServeError(
            f"refusing to serve on {host} without API keys: anyone who can reach it could call every model",
            hint="create a key with `slmkit serve keys add NAME` (clients send it as 'Authorization: Bearer'), "
            "bind 127.0.0.1, or set serve.allow_open_network: true to serve an open API on purpose",
        )
    log.warning("serving on %s WITHOUT API keys (serve.allow_open_network): anyone who can reach it can call it", host)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            hint="choose another port with --port (0 picks a free one) or stop what is using it",
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _client_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to `host`."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
