"""`slmkit serve` and `slmkit demo`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slmkit.cli.common import ProjectOption, load


def serve(
    project: ProjectOption = Path("."),
    host: Annotated[str | None, typer.Option(help="Interface to bind (default: serve.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: serve.port; 0 = any free port).")] = None,
    release: Annotated[str | None, typer.Option(help="Alias or version served by default.")] = None,
) -> None:
    """Serve the released adapters behind an OpenAI-compatible API."""
    from slmkit.serve import run_server

    run_server(load(project, check_files=False), host=host, port=port, release=release)


def demo(
    example: Annotated[Path, typer.Argument(help="Example project to copy and run.")] = Path(
        "examples/support-tickets"
    ),
    workdir: Annotated[Path, typer.Option(help="Where the demo copy runs (replaced on each run).")] = Path(".demo"),
) -> None:
    """Run the whole chain on the example: data, train, eval, release, serve, answer."""
    from slmkit.pipeline import run_demo

    run_demo(example, workdir)
