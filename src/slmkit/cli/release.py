"""`slmkit release`, `slmkit rollback`, `slmkit check`."""

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
    from slmkit.pipeline import rollback_alias

    config = load(project, check_files=False)
    before, after = rollback_alias(config, to=to, alias=alias, reason=reason, log=say)
    say(f"{config.task.name}@{alias or config.release.alias}: {before} -> {after}")


def promote(
    version: Annotated[int, typer.Argument(help="The release version the alias moves to.")],
    project: ProjectOption = Path("."),
    alias: Annotated[str | None, typer.Option("--alias", help="Alias to move (default: release.alias).")] = None,
    reason: Annotated[str, typer.Option("--reason", "-m", help="Why; kept in the audit log.")] = "",
) -> None:
    """Point the production alias (or --alias) at an existing release, e.g. forward again after a rollback.

    Refused when a blocking item of that release's production checklist is not met.
    """
    from slmkit.pipeline import promote_alias

    config = load(project, check_files=False)
    before, after = promote_alias(config, version, alias=alias, reason=reason, log=say)
    say(f"{config.task.name}@{alias or config.release.alias}: {before if before is not None else 'unset'} -> {after}")


def check(
    ref: Annotated[str | None, typer.Argument(help="3, v3, an alias, or name@3 (default: release.alias).")] = None,
    project: ProjectOption = Path("."),
) -> None:
    """The production checklist of a release, from recorded evidence; non-zero exit if a blocking item fails."""
    from slmkit.cli.releases import release_ref
    from slmkit.monitor.rules import check_rules
    from slmkit.registry import Registry
    from slmkit.registry.checklist import release_checklist

    config = load(project, check_files=False)
    registry = Registry(config.state_dir)
    rel = registry.resolve(release_ref(config, ref))
    alerts = check_rules(
        config,
        registry,
        subject=rel.ref,
        recorded_config=rel.config,
        eval_report_digest=rel.eval_report_digest,
        dataset_version=rel.dataset_version,
    )
    checklist = release_checklist(registry, rel, alerts=alerts, blocking=config.release.blocking)
    for line in checklist.lines():
        say(line)
    if alerts:
        say("alert rules (monitor.alerts), each evaluated for this release:")
        for rule in alerts:
            say(f"  {'ok  ' if rule.evaluates else 'FAIL'}  {rule.rule}: {rule.detail}")
    checklist.refuse_blockers(f"{checklist.subject} is not ready for production")
    say(f"{checklist.subject}: every blocking item ({', '.join(config.release.blocking) or 'none'}) passed")
