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


def queue(
    ref: Annotated[
        str | None, typer.Argument(help="A release: 3, v3, an alias, name@3 (default: release.alias).")
    ] = None,
    project: ProjectOption = Path("."),
) -> None:
    """The release's review items, most urgent first, with the verdict recorded on each."""
    from slmkit.eval.verdicts import review_queue
    from slmkit.registry import Registry

    config = load(project, check_files=False)
    for line in review_queue(config, Registry(config.state_dir), ref).lines():
        say(line)


def answer(
    item: Annotated[str, typer.Argument(help="The item id (its gold id), as `slmkit review queue` lists it.")],
    accept: Annotated[bool, typer.Option("--accept", help="The answer is right.")] = False,
    correct: Annotated[
        str | None, typer.Option("--correct", help="The answer is wrong; the right one, as JSON.")
    ] = None,
    reject: Annotated[bool, typer.Option("--reject", help="The answer is wrong (no correction).")] = False,
    note: Annotated[str, typer.Option("--note", help="Why, for whoever reads the review.")] = "",
    release: Annotated[str | None, typer.Option("--release", help="Release (default: release.alias).")] = None,
    reviewer: Annotated[str | None, typer.Option("--reviewer", help="Who reviewed (default: user@host).")] = None,
    project: ProjectOption = Path("."),
) -> None:
    """Record a verdict on one review item: --accept, --correct JSON (checked against the schema) or --reject."""
    from slmkit.errors import DataError
    from slmkit.eval.verdicts import answer_item, parse_correction
    from slmkit.registry import Registry

    chosen = [
        name for name, given in (("accept", accept), ("correct", correct is not None), ("reject", reject)) if given
    ]
    if len(chosen) != 1:
        raise DataError("give exactly one of --accept, --correct JSON or --reject", hint="see --help")
    config = load(project, check_files=False)
    correction = parse_correction(correct) if correct is not None else None
    recorded = answer_item(
        config,
        Registry(config.state_dir),
        release,
        item,
        chosen[0],
        correction=correction,
        note=note,
        reviewer=reviewer,
    )
    fixed = f": {recorded.correction}" if recorded.correction is not None else ""
    say(
        f"{recorded.name}@{recorded.version} item {recorded.item_id}: {recorded.verdict}{fixed} ({recorded.created_by})"
    )


def signoff(
    ref: Annotated[
        str | None, typer.Argument(help="A release: 3, v3, an alias, name@3 (default: release.alias).")
    ] = None,
    reviewer: Annotated[str | None, typer.Option("--reviewer", help="Who signs (default: user@host).")] = None,
    project: ProjectOption = Path("."),
) -> None:
    """Sign the release's review off from the verdicts recorded item by item; `slmkit check` shows it."""
    from slmkit.eval.signoff import sign_off
    from slmkit.registry import Registry

    config = load(project, check_files=False)
    for line in sign_off(config, Registry(config.state_dir), ref, reviewer=reviewer).lines():
        say(line)
