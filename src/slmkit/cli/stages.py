"""`slmkit data build`, `slmkit train`, `slmkit eval`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slmkit.cli.common import ProjectOption, load, say
from slmkit.errors import GateFailed


def data_build(
    project: ProjectOption = Path("."),
    new_gold: Annotated[bool, typer.Option("--new-gold", help="Draw and lock a new gold set.")] = False,
) -> None:
    """Normalize, validate, dedupe and split the sources into a versioned dataset."""
    from slmkit.data import run_data_build

    result = run_data_build(load(project), new_gold=new_gold)
    for line in result.summary_lines():
        say(line)


def train(
    project: ProjectOption = Path("."),
    dataset: Annotated[str | None, typer.Option("--dataset", help="Dataset version (default: latest).")] = None,
    resume: Annotated[
        str | None,
        typer.Option("--resume", metavar="RUN_ID", help="Continue an unfinished run from its last checkpoint."),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Train an adapter (LoRA, DoRA, QLoRA) or the full model; writes .slmkit/runs/<run-id>/.

    Runs under `accelerate launch` too: data-parallel over the launched processes.
    """
    from slmkit.train import run_train

    result = run_train(load(project), dataset_version=dataset, resume=resume, progress=not quiet)
    if result.is_main:
        for line in result.summary_lines():
            say(line)


def evaluate(
    project: ProjectOption = Path("."),
    run: Annotated[str | None, typer.Option("--run", help="Training run id (default: latest).")] = None,
    via: Annotated[
        str | None,
        typer.Option(help="Also answer the gold set through this OpenAI-compatible server (e.g. slmkit serve's /v1)."),
    ] = None,
    via_model: Annotated[
        str | None, typer.Option(help="Model asked for with --via (default: the task at release.alias).")
    ] = None,
) -> None:
    """Evaluate base model and adapter on the locked gold set and check the gates."""
    from slmkit.eval import run_eval

    result = run_eval(load(project), run_id=run, via=via, via_model=via_model)
    for line in result.summary_lines():
        say(line)
    if not result.passed:
        failed = ", ".join(g.gate for g in result.gates if not g.passed)
        raise GateFailed(
            f"run {result.run_id} failed {failed}",
            hint="see the report; fix the data or training, then train and evaluate again",
        )
