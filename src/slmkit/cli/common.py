"""Options and printing shared by the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slmkit.config import ProjectConfig, load_config

ProjectOption = Annotated[
    Path,
    typer.Option("--project", "-p", help="Project directory (holding slmkit.yaml) or the file itself."),
]
# On a subcommand, --project may also come before it: `slmkit serve -p DIR keys list`.
SubProjectOption = Annotated[
    Path | None,
    typer.Option("--project", "-p", help="Project directory (holding slmkit.yaml) or the file itself."),
]


def load(project: Path, *, check_files: bool = True) -> ProjectConfig:
    """The validated config; `check_files=False` where raw data is not needed (serve, rollback)."""
    return load_config(project, check_files=check_files)


def say(line: str = "") -> None:
    typer.echo(line)


def heading(text: str) -> None:
    typer.secho(text, bold=True)
