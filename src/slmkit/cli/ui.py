"""`slmkit ui`: the web console for the people who sign releases off."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slmkit.cli.common import ProjectOption, load


def ui(
    project: ProjectOption = Path("."),
    host: Annotated[str, typer.Option(help="Interface to bind (loopback unless --allow-network).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 = any free port).")] = 8800,
    allow_network: Annotated[
        bool, typer.Option("--allow-network", help="Allow a host other than loopback (anyone reaching it can read).")
    ] = False,
) -> None:
    """Serve the console: overview, datasets, runs, evals, releases, audit log and review queue.

    Read-only without a key; a key with the reviewer role answers and signs off reviews, one with
    the releaser role promotes and rolls back aliases (`slmkit serve keys add NAME --role ...`).
    """
    from slmkit.ui import run_console

    run_console(load(project, check_files=False), host=host, port=port, allow_network=allow_network)
