"""`slmkit retrain`, `slmkit retrain schedule`, `slmkit retrain list`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from slmkit.cli.common import ProjectOption, SubProjectOption, load, say


def retrain(
    ctx: typer.Context,
    project: ProjectOption = Path("."),
    if_due: Annotated[
        bool, typer.Option("--if-due", help="Only when a monitor.retrain trigger says so (for cron / a timer).")
    ] = False,
    why: Annotated[str, typer.Option("--why", help="Why, for the record and the audit log.")] = "",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Build, train, evaluate (every gate + no_regression_vs production) and release only if all pass.

    Keyed by (dataset version, config hash, production release): an unchanged input does nothing.
    A killed retrain resumes at its stage; exit 6 when a gate blocked it (nothing moved).
    """
    ctx.obj = project
    if ctx.invoked_subcommand is not None:
        return
    from slmkit.retrain import run_retrain

    config = load(project)
    if if_due:
        from slmkit.monitor.requests import RequestLog
        from slmkit.registry import Registry
        from slmkit.retrain.triggers import due

        with Registry(config.state_dir) as registry, RequestLog(config.state_dir / "requests.db") as log:
            judged = due(config, registry, log)
        for line in judged.lines():
            say(line)
        if not judged.due:
            return
        why = why or "; ".join(judged.reasons)
    result = run_retrain(config, why=why, progress=not quiet)
    for line in result.lines():
        say(line)
    if result.exit_code:
        sys.exit(result.exit_code)


def schedule(
    ctx: typer.Context,
    every: Annotated[str, typer.Option("--every", help="How often to check: 15m, 1h, 6h, 1d.")] = "1h",
    cron: Annotated[bool, typer.Option("--cron", help="A crontab line (with flock) instead of systemd units.")] = False,
    project: SubProjectOption = None,
) -> None:
    """Print a systemd timer + service (or a crontab line) that runs `slmkit retrain --if-due`."""
    from slmkit.retrain.schedule import schedule_text

    where = project or ctx.obj or Path(".")
    config = load(where, check_files=False)
    typer.echo(schedule_text(config.root, config.task.name, every, cron=cron), nl=False)


def history(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option("--limit", min=1, help="The newest N.")] = 20,
    project: SubProjectOption = None,
) -> None:
    """The retrains so far, newest first: why, the stage reached, how each ended."""
    from slmkit.registry import Registry

    config = load(project or ctx.obj or Path("."), check_files=False)
    with Registry(config.state_dir) as registry:
        records = registry.list_retrains(config.task.name, limit)
    if not records:
        say("no retrains yet")
    for r in records:
        ended = r.outcome or f"unfinished at {r.stage}"
        release = f" -> v{r.release_version}" if r.release_version else ""
        say(f"#{r.id:<4}{r.started_at}  {ended}{release}  vs {r.production or '(none)'}  run {r.run_id or '-'}")
        say(f"      why: {r.why}")
        for line in r.detail.get("failed", []):
            say(f"      {line}")
