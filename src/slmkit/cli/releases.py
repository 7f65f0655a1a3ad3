"""`slmkit releases [list|show|diff|audit]` and `slmkit registry verify`: read the registry, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from slmkit.cli.common import ProjectOption, load, say
from slmkit.config import ProjectConfig
from slmkit.errors import RegistryError

# On a subcommand, --project may also come before it: `slmkit releases -p DIR show 2`.
SubProjectOption = Annotated[
    Path | None,
    typer.Option("--project", "-p", help="Project directory (holding slmkit.yaml) or the file itself."),
]


def releases_main(ctx: typer.Context, project: ProjectOption = Path(".")) -> None:
    """List, show and compare releases, and read who moved which alias. Alone: list."""
    ctx.obj = project
    if ctx.invoked_subcommand is None:
        _list(load(project, check_files=False))


def list_releases(ctx: typer.Context, project: SubProjectOption = None) -> None:
    """List the releases of this project's task, newest first."""
    _list(_config(ctx, project))


def show(
    ctx: typer.Context,
    ref: Annotated[str | None, typer.Argument(help="3, v3, an alias, or name@3 (default: release.alias).")] = None,
    project: SubProjectOption = None,
) -> None:
    """Every recorded field of a release: hashes, data, eval, code, libraries, machine, evidence, config."""
    from slmkit.registry import Registry
    from slmkit.registry.describe import release_lines

    config = _config(ctx, project)
    registry = Registry(config.state_dir)
    for line in release_lines(registry, registry.resolve(release_ref(config, ref))):
        say(line)


def diff(
    ctx: typer.Context,
    a: Annotated[str, typer.Argument(help="The earlier release: 1, v1, an alias, or name@1.")],
    b: Annotated[str, typer.Argument(help="The later release.")],
    project: SubProjectOption = None,
) -> None:
    """What changed between two releases: config keys, data counts, metrics with deltas, hashes."""
    from slmkit.registry import Registry
    from slmkit.registry.describe import diff_lines

    config = _config(ctx, project)
    registry = Registry(config.state_dir)
    first, second = (registry.resolve(release_ref(config, r)) for r in (a, b))
    for line in diff_lines(registry, first, second):
        say(line)


def audit(
    ctx: typer.Context,
    project: SubProjectOption = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Also datasets, gold locks and evaluations, not only releases and aliases.")
    ] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Newest entries to show.")] = 50,
) -> None:
    """The audit log, newest first: who released, moved or rolled back which alias, when, and why."""
    from slmkit.registry import Registry
    from slmkit.registry.describe import AUDIT_ACTIONS, audit_lines

    config = _config(ctx, project)
    entries = Registry(config.state_dir).audit_log(
        config.task.name, limit=limit, actions=None if everything else AUDIT_ACTIONS
    )
    if not entries:
        say(f"no audit entries for {config.task.name} yet")
    for line in audit_lines(entries):
        say(line)


def mirror(
    ctx: typer.Context,
    mlflow: Annotated[
        str | None, typer.Option("--mlflow", help="MLflow tracking URI (default: release.mlflow_uri).")
    ] = None,
    project: SubProjectOption = None,
) -> None:
    """Copy every release and alias of this task into an MLflow model registry (idempotent)."""
    from slmkit.registry import Registry
    from slmkit.registry.mirror import mirror_to_mlflow

    config = _config(ctx, project)
    uri = mlflow or config.release.mlflow_uri
    if not uri:
        raise RegistryError(
            "no MLflow tracking URI to mirror to",
            hint="pass --mlflow sqlite:///mlflow.db (or http://host:5000), or set release.mlflow_uri in slmkit.yaml",
        )
    for line in mirror_to_mlflow(Registry(config.state_dir), config.task.name, uri, log=say).summary_lines():
        say(line)


def verify(project: ProjectOption = Path(".")) -> None:
    """Re-hash every stored artifact the registry points at; exit non-zero if one is missing or altered."""
    from slmkit.registry import Registry

    config = load(project, check_files=False)
    registry = Registry(config.state_dir)
    checked = len(registry.referenced_artifacts())
    problems = registry.verify()
    for problem in problems:
        say(f"PROBLEM  {problem}")
    if problems:
        raise RegistryError(
            f"{len(problems)} of {checked} artifacts in {registry.store.root} are missing or altered",
            hint="re-run the stage that wrote each one (data build, train, eval); a release whose adapter "
            "changed must not be served: roll back to one that verifies",
        )
    say(f"ok: {checked} artifacts in {registry.store.root} re-hash to their recorded digests")


def release_ref(config: ProjectConfig, ref: str | None) -> str:
    """`3`, `v3`, `staging` or `name@3` -> a reference `Registry.resolve` reads (default: release.alias)."""
    name = config.task.name
    if ref is None:
        return f"{name}@{config.release.alias}"
    if "@" in ref or ref == name:
        return ref
    return f"{name}@{ref}"


def _config(ctx: typer.Context, project: Path | None) -> ProjectConfig:
    return load(project or ctx.obj or Path("."), check_files=False)


def _list(config: ProjectConfig) -> None:
    from slmkit.registry import Registry

    rows = Registry(config.state_dir).list_releases(config.task.name)
    if not rows:
        say(f"no releases of {config.task.name} yet; run `slmkit release` after a passing `slmkit eval`")
        return
    say(f"{'version':<9}{'created':<22}{'aliases':<20}{'dataset':<18}{'adapter':<14}{'rollback':<10}note")
    for rel in sorted(rows, key=lambda r: r.version, reverse=True):
        rehearsal = rel.latest_evidence("rehearsal")
        say(
            f"{rel.version:<9}{rel.created_at[:19]:<22}{','.join(rel.aliases) or '-':<20}"
            f"{rel.dataset_version:<18}{rel.adapter_digest[:12]:<14}"
            f"{rehearsal.status if rehearsal else '-':<10}{rel.note}"
        )
