"""`slmkit release`, `slmkit rollback`, `slmkit releases`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slmkit.cli.common import ProjectOption, load, say


def release(
    project: ProjectOption = Path("."),
    run: Annotated[str | None, typer.Option("--run", help="Training run id (default: latest).")] = None,
    note: Annotated[str, typer.Option("--note", "-m", help="Why this release; kept in the audit log.")] = "",
    alias: Annotated[str | None, typer.Option("--alias", help="Alias to move (default: release.alias).")] = None,
) -> None:
    """Record a gated run as a release and move the production alias to it.

    Before the alias moves, the release it points at now answers a sample of its gold items
    again (a rehearsed rollback), and the production checklist's blocking items must pass.
    """
    from slmkit.pipeline import run_release

    rel = run_release(load(project, check_files=False), run_id=run, note=note, alias=alias, log=say)
    say(
        f"released {rel.name}@{rel.version} (adapter sha256:{rel.adapter_digest[:12]}, "
        f"dataset {rel.dataset_version}); {', '.join(rel.aliases) or 'no alias'} -> {rel.version}"
    )
    rehearsal = rel.latest_evidence("rehearsal")
    if rehearsal is not None:
        say(f"  rollback rehearsal: {rehearsal.status}: {rehearsal.detail.get('summary', '')}")
    if rel.parent_version:
        say(f"  previous: {rel.name}@{rel.parent_version} (`slmkit rollback` returns to it)")


def rollback(
    project: ProjectOption = Path("."),
    to: Annotated[int | None, typer.Option("--to", help="Version to return to (default: the previous one).")] = None,
    alias: Annotated[str | None, typer.Option("--alias", help="Alias to move (default: release.alias).")] = None,
    reason: Annotated[str, typer.Option("--reason", "-m", help="Why; kept in the audit log.")] = "",
) -> None:
    """Move the production alias back to the previous (or a given) release."""
    from slmkit.registry import Registry

    config = load(project, check_files=False)
    alias = alias or config.release.alias
    before, after = Registry(config.state_dir).rollback(config.task.name, alias=alias, to=to, reason=reason)
    say(f"{config.task.name}@{alias}: {before} -> {after}")


def releases(project: ProjectOption = Path(".")) -> None:
    """List the releases of this project's task, newest first."""
    from slmkit.registry import Registry

    config = load(project, check_files=False)
    rows = Registry(config.state_dir).list_releases(config.task.name)
    if not rows:
        say(f"no releases of {config.task.name} yet; run `slmkit release` after a passing `slmkit eval`")
        return
    say(f"{'version':<9}{'created':<22}{'aliases':<20}{'dataset':<18}{'adapter':<14}note")
    for rel in sorted(rows, key=lambda r: r.version, reverse=True):
        say(
            f"{rel.version:<9}{rel.created_at[:19]:<22}{','.join(rel.aliases) or '-':<20}"
            f"{rel.dataset_version:<18}{rel.adapter_digest[:12]:<14}{rel.note}"
        )
