"""What the console's browser tests do besides looking: keys with roles, logging in, a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from pathlib import Path

from slmkit.serve.keys import KeyStore


def add_key(project: Path, name: str, *roles: str) -> str:
    with KeyStore(project / ".slmkit" / "keys.db") as keys:
        return keys.add(name, roles=list(roles))[1]


def submit(page, button) -> None:  # type: ignore[no-untyped-def]
    """Click a form's button and wait for the page the console sends back (POST, then redirect)."""
    with page.expect_navigation():
        button.click()


def log_in(page, token: str) -> None:  # type: ignore[no-untyped-def]
    page.goto("/login")
    page.fill("input[name=token]", token)
    submit(page, page.get_by_role("button", name="log in"))
    assert page.url.endswith("/")


def serve(project: Path) -> tuple[subprocess.Popen, str]:
    """`slmkit serve` in its own process on a free port; returns it and its OpenAI base URL."""
    process = subprocess.Popen(
        [sys.executable, "-m", "slmkit", "serve", "-p", str(project), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    for line in process.stdout:
        found = re.search(r"OpenAI base URL: (\S+)", line)
        if found:
            threading.Thread(target=process.stdout.read, daemon=True).start()  # keep draining its log
            return process, found.group(1)
    process.wait(timeout=10)
    raise AssertionError(f"slmkit serve exited {process.returncode} before printing its URL")
