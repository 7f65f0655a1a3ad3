"""`slmkit init` and `slmkit validate`."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from slmkit.cli.common import ProjectOption, load, say


class Template(StrEnum):
    classification = "classification"
    extraction = "extraction"


def init(
    directory: Annotated[Path, typer.Argument(help="Directory for the new project (created if missing).")],
    template: Annotated[Template, typer.Option("--template", "-t", help="Starter task.")] = Template.classification,
) -> None:
    """Write a commented starter project: slmkit.yaml and a few sample rows."""
    from slmkit.templates import write_template

    written = write_template(template.value, directory)
    for path in written:
        say(f"wrote {path}")
    say(f"next: edit {written[0]}, add your rows to {written[1]}, then `slmkit validate -p {directory}`")


def validate(project: ProjectOption = Path(".")) -> None:
    """Check slmkit.yaml and report every problem at once (the base model too, without loading it)."""
    from slmkit.config import setting_line
    from slmkit.errors import ConfigError
    from slmkit.models.resolve import base_model_problem

    config = load(project)
    problem = base_model_problem(config.base_model, config.root)
    if problem:
        source = config.root / "slmkit.yaml"
        line = setting_line(source, ("base_model",))
        raise ConfigError([f"{f'line {line}: ' if line else ''}base_model: {problem}"], path=str(source))
    task = config.task
    say(f"ok: {config.root / 'slmkit.yaml'}")
    say(
        f"  task {task.name}: input {task.input_fields} -> {len(config.output_schema().get('properties', {}))} "
        f"output fields" + (f", label '{task.label_field}'" if task.label_field else "")
    )
    say(
        f"  base model {config.base_model}; {len(config.data.sources)} data source(s); {len(config.eval.gates)} gate(s)"
    )
