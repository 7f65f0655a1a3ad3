"""`slmkit review export` and `slmkit review import`: human review of the gold items that need it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slmkit.cli.common import ProjectOption, load, say


def export(
    ref: Annotated[
        str | None,
        typer.Argument(help="A training run id, or a release: 3, v3, an alias, name@3 (default: release.alias)."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder to write into (default: the report's run).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N items, the most urgent first.")] = None,
    project: ProjectOption = Path("."),
) -> None:
    """Write review.csv and review.html: disagreements, refusals, low-confidence answers, tagged rows."""
    from slmkit.eval.review import export_review, find_report, recorded_task
    from slmkit.registry import Registry

    config = load(project, check_files=False)
    registry = Registry(config.state_dir)
    source = find_report(config, registry, ref)
    run_id = source.report.get("run_id")
    out_dir = out or config.state_dir / "runs" / str(run_id) / "review"
    task = recorded_task(config, registry, run_id)
    for line in export_review(source, task, config.eval.review, out_dir, limit=limit).summary_lines():
        say(line)


def import_(
    file: Annotated[Path, typer.Argument(help="The review.csv with its verdict column filled in.")],
    release: Annotated[
        str | None, typer.Option("--release", help="Release to sign off (default: the one exported).")
    ] = None,
    reviewer: Annotated[str | None, typer.Option("--reviewer", help="Who reviewed (default: user@host).")] = None,
    project: ProjectOption = Path("."),
) -> None:
    """Read the verdicts back and record the sign-off on the release; `slmkit check` shows it."""
    from slmkit.eval.signoff import import_review
    from slmkit.registry import Registry

    config = load(project, check_files=False)
    signoff = import_review(config, Registry(config.state_dir), file, release_ref=release, reviewer=reviewer)
    for line in signoff.lines():
        say(line)
