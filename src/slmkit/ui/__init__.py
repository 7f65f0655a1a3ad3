"""The web console (`slmkit ui`): a project's releases, data, runs, evals, audit log and review queue.

Server-rendered HTML with inline SVG charts (slmkit.charts), no script and no external asset, on
the same stack as `slmkit serve` (FastAPI + uvicorn), bound to loopback by default. Reading needs
no key; reviewing and moving aliases need an API key holding the reviewer or releaser role, and
each action calls the function the command line calls. See docs/console.md.
"""

from slmkit.ui.server import ConsoleHandle, run_console, start_console

__all__ = ["ConsoleHandle", "run_console", "start_console"]
