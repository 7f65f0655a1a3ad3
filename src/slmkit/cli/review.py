"""`slmkit review export` and `slmkit review import`: human review of the gold items that need it."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from slmkit.cli.common import ProjectOption, load, say

if TYPE_CHECKING:
    from slmkit.config import ProjectConfig


TrafficOption = Annotated[
    bool,
    typer.Option("--traffic", help="The production review queue (captured requests), not a release's gold items."),
]


def export(
    ref: Annotated[
        str | None,
        typer.Argument(help="A training run id, or a release: 3, v3, an alias, name@3 (default: release.alias)."),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Folder to write into (default: the report's run).")] = None,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="At most N items, the most urgent first.")] = None,
    traffic: TrafficOption = False,
    formats: Annotated[
        str, typer.Option("--format", help="--traffic: which of csv,html,label-studio,argilla to write.")
    ] = "csv,html,label-studio,argilla",
    project: ProjectOption = Path("."),
) -> None:
    """Write review.csv and review.html: disagreements, refusals, low-confidence answers, tagged rows.

    With --traffic: the open production review items as queue.csv, queue.html, Label Studio tasks
    (label-studio.json + its labeling config) and Argilla records (argilla.jsonl).
    """
    from slmkit.eval.review import export_review, find_report, recorded_task
    from slmkit.registry import Registry

    config = load(project, check_files=False)
    if traffic:
        from slmkit.errors import DataError
        from slmkit.monitor.queue import queue_items
        from slmkit.monitor.requests import RequestLog
        from slmkit.monitor.review_export import FORMATS, export_items

        chosen = tuple(f.strip() for f in formats.split(",") if f.strip())
        unknown = [f for f in chosen if f not in FORMATS]
        if unknown:
            raise DataError(f"--format: unknown {', '.join(unknown)}", hint=f"choose from {','.join(FORMATS)}")
        with RequestLog(config.state_dir / "requests.db") as log:
            items = queue_items(log, open_only=True)[:limit] if limit else queue_items(log, open_only=True)
        written = export_items(config.task.name, items, out or config.state_dir / "review" / "traffic", chosen)
        for line in written.lines():
            say(line)
        return
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
    """Read the verdicts back and record the sign-off on the release; `slmkit check` shows it.

    A production review file (queue.csv from `export --traffic`, a Label Studio JSON export, Argilla
    JSONL records) records each answer instead, and refreshes the reviewed-items data source.
    """
    from slmkit.eval.signoff import import_review
    from slmkit.registry import Registry

    config = load(project, check_files=False)
    if _is_traffic_file(file):
        from slmkit.monitor.requests import RequestLog
        from slmkit.monitor.review_import import import_answers

        with RequestLog(config.state_dir / "requests.db") as log, Registry(config.state_dir) as registry:
            result = import_answers(config, log, registry, file, reviewer=reviewer)
        for line in result.lines():
            say(line)
        return
    signoff = import_review(config, Registry(config.state_dir), file, release_ref=release, reviewer=reviewer)
    for line in signoff.lines():
        say(line)


def queue(
    ref: Annotated[
        str | None, typer.Argument(help="A release: 3, v3, an alias, name@3 (default: release.alias).")
    ] = None,
    traffic: TrafficOption = False,
    size: Annotated[
        int | None, typer.Option("--size", min=1, help="--traffic: draw N items (default: monitor.review.size).")
    ] = None,
    show: Annotated[bool, typer.Option("--list", help="--traffic: list the open items; draw nothing.")] = False,
    project: ProjectOption = Path("."),
) -> None:
    """The release's review items, most urgent first, with the verdict recorded on each.

    With --traffic: draw the next items from captured production traffic by strata (monitor.review:
    random, low_confidence, flagged, refused) into the production review queue, then show it with the
    production accuracy its reviewed random share estimates.
    """
    from slmkit.eval.verdicts import review_queue
    from slmkit.registry import Registry

    config = load(project, check_files=False)
    if traffic:
        _traffic_queue(config, size, show)
        return
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
    if item.startswith("requests.db#"):
        from slmkit.monitor.requests import RequestLog
        from slmkit.monitor.review_import import answer_item as answer_traffic_item

        with RequestLog(config.state_dir / "requests.db") as log, Registry(config.state_dir) as registry:
            done = answer_traffic_item(
                config, log, registry, item, chosen[0], correction=correction, note=note, reviewer=reviewer
            )
        fixed = f": {json.dumps(done.correction, ensure_ascii=False)}" if done.correction is not None else ""
        say(f"{item}: {done.verdict}{fixed} ({done.reviewer}); {config.state_dir.name}/reviewed.jsonl updated")
        return
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


def _is_traffic_file(file: Path) -> bool:
    """A production review file: Label Studio JSON, Argilla JSONL, or a CSV with the queue's columns."""
    if file.suffix.lower() in (".json", ".jsonl"):
        return True
    if file.suffix.lower() == ".csv" and file.is_file():
        with file.open(encoding="utf-8-sig", newline="") as fh:
            header = next(csv.reader(fh), [])
        return "stratum" in [h.strip() for h in header]
    return False


def _traffic_queue(config: ProjectConfig, size: int | None, show: bool) -> None:
    from slmkit.monitor.queue import build_queue, estimates, queue_items
    from slmkit.monitor.requests import RequestLog
    from slmkit.registry.records import default_actor

    with RequestLog(config.state_dir / "requests.db") as log:
        if not show:
            for line in build_queue(log, config.monitor.review, size=size, actor=default_actor()).lines():
                say(line)
        items = queue_items(log)
    open_items = [i for i in items if i.current is None]
    by_stratum: dict[str, int] = {}
    for item in open_items:
        by_stratum[item.stratum] = by_stratum.get(item.stratum, 0) + 1
    answered = len(items) - len(open_items)
    strata = ", ".join(f"{n} {s}" for s, n in sorted(by_stratum.items()))
    say(
        f"production review queue: {len(open_items)} open"
        + (f" ({strata})" if strata else "")
        + f", {answered} answered"
    )
    if show:
        for item in open_items:
            conf = "-" if item.confidence is None else f"{item.confidence:.3f}"
            say(f"  {item.id}  {item.stratum:<15}{item.release or '':<22}{conf:>7}  {item.input_text()[:60]!r}")
    for estimate in estimates(items, config.task.label_field):
        say("production accuracy " + estimate.line())
    say("next: `slmkit review export --traffic`, fill in the verdicts, `slmkit review import FILE`")
