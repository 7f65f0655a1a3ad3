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
    """A full-page PNG in `folder`; a `readme` one is also stored small in $SLMKIT_SCREENSHOTS when set (docs/img)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    extra = os.environ.get("SLMKIT_SCREENSHOTS")
    if extra and readme:
        Path(extra).mkdir(parents=True, exist_ok=True)
        save_small(path.read_bytes(), Path(extra) / path.name)
    return path


def save_small(png: bytes, path: Path, *, height: int = 2400, max_bytes: int = 150_000) -> Path:
    """The top `height` pixels of a screenshot (fewer while the file is over `max_bytes`), stored with a
    256-colour palette: the pages are flat colours, so text stays sharp at a fraction of the size."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    height = min(image.height, height)
    tmp = path.with_suffix(".png.tmp")
    while True:
        small = image.crop((0, 0, image.width, height)).quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        small.save(tmp, format="PNG", optimize=True)
        if tmp.stat().st_size <= max_bytes:
            break
        height = int(height * 0.85)
    tmp.replace(path)  # written whole, then renamed
    return path
