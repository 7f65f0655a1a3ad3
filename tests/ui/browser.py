"""Playwright driving Debian's chromium (Playwright's own browser download is not used), and screenshots."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
needs_browser = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (CI installs it: apt-get install chromium)"
)


def launch(playwright):  # type: ignore[no-untyped-def]
    return playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)


def screenshot(page, folder: Path, name: str, *, readme: bool = False) -> Path:  # type: ignore[no-untyped-def]
    """A full-page PNG in `folder`; a `readme` one is also copied to $SLMKIT_SCREENSHOTS when set (docs/img)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get("SLMKIT_SCREENSHOTS")
    if extra and readme:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, Path(extra) / path.name)
    return path
