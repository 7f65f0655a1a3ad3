"""The console's browser tests share one chromium and one project with two real releases of the tiny
model (built once for tests/ui); each test works on its own copy."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from slmkit.config import load_config
from slmkit.ui import ConsoleHandle, start_console
from tests.test_release_cli import Released, make_released
from tests.ui.browser import launch


@pytest.fixture(scope="session")
def released(tmp_path_factory, tiny_model_dir) -> Released:
    return make_released(tmp_path_factory.mktemp("ui-releases") / "project", tiny_model_dir)


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture
def project(released: Released, tmp_path: Path) -> Path:
    target = tmp_path / "project"
    shutil.copytree(released.project, target)
    return target


@pytest.fixture
def console(project: Path) -> Iterator[ConsoleHandle]:
    with start_console(load_config(project, check_files=False)) as handle:
        yield handle


@pytest.fixture
def page(browser, console: ConsoleHandle):  # type: ignore[no-untyped-def]
    context = browser.new_context(base_url=console.url, viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()
