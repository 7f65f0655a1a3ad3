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
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A JSONL / CSV / TSV export of labelled rows: infer the inputs, the output schema and the label "
            "field from it (every choice commented in slmkit.yaml) instead of a template.",
        ),
    ] = None,
) -> None:
    """Write a commented starter project: slmkit.yaml and a few sample rows, or one inferred from your data."""
    from slmkit.templates import write_template

    if from_file is not None:
        _init_from(directory, from_file)
        return

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


def _init_from(directory: Path, source: Path) -> None:
    """A project inferred from `source`, copied into DIRECTORY/data/; every inferred choice printed."""
    import re
    import shutil

    from slmkit.config import CONFIG_FILE
    from slmkit.data.infer import infer_project, project_yaml
    from slmkit.errors import ConfigError

    target = directory / CONFIG_FILE
    if target.exists():
        raise ConfigError([f"{target} exists; init writes a new project"], path=str(target))
    inferred = infer_project(source)
    name = re.sub(r"[^a-z0-9._-]+", "-", (directory.resolve().name or "task").lower()).strip("-._")[:64] or "task"
    data_path = f"data/{source.name}"
    (directory / "data").mkdir(parents=True, exist_ok=True)
    if (directory / data_path).resolve() != source.resolve():
        shutil.copy2(source, directory / data_path)
    target.write_text(project_yaml(inferred, name, data_path), encoding="utf-8")
    say(f"read {inferred.rows:,} rows of {source} ({inferred.format}); inferred:")
    for line in inferred.lines():
        say(line)
    say(f"wrote {target} and {directory / data_path}")
    say(
        f"next: check every `inferred` line of {target}, write its system_prompt, then `slmkit validate -p {directory}`"
    )
