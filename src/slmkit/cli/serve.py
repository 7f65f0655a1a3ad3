"""`slmkit serve`, `slmkit serve keys add|list|revoke` and `slmkit demo`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from slmkit.cli.common import ProjectOption, SubProjectOption, load, say

if TYPE_CHECKING:
    from slmkit.serve.keys import KeyStore


def serve(
    ctx: typer.Context,
    project: ProjectOption = Path("."),
    host: Annotated[str | None, typer.Option(help="Interface to bind (default: serve.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: serve.port; 0 = any free port).")] = None,
    release: Annotated[str | None, typer.Option(help="Alias or version served by default.")] = None,
) -> None:
    """Serve the released adapters behind an OpenAI-compatible API; `keys` manages its API keys."""
    ctx.obj = project
    if ctx.invoked_subcommand is not None:
        return
    from slmkit.serve import run_server

    run_server(load(project, check_files=False), host=host, port=port, release=release)


def keys_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Who or what uses the key, e.g. support-app.")],
    model: Annotated[
        list[str] | None,
        typer.Option(help="A model it may use (a task name allows all its versions; name@3 only that); repeat."),
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option(help="An access group whose documents its requests may retrieve (besides public ones); repeat."),
    ] = None,
    role: Annotated[
        list[str] | None,
        typer.Option(
            help="A console role: reviewer (answer and sign off reviews), releaser (promote, roll back); repeat."
        ),
    ] = None,
    project: SubProjectOption = None,
) -> None:
    """Create an API key and print its token once; only its sha256 is stored."""
    with _keys(ctx, project) as keys:
        key, token = keys.add(name, model, group, roles=role)
    roles = f"; console roles: {', '.join(key.roles)}" if key.roles else ""
    say(
        f"created key {key.name} for {', '.join(key.models) or 'every model'}; "
        f"documents: public{''.join(', ' + g for g in key.groups)}{roles}"
    )
    say(f"  token (shown only now; send it as 'Authorization: Bearer <token>'): {token}")


def keys_list(ctx: typer.Context, project: SubProjectOption = None) -> None:
    """The API keys: name, models, token hint, created and revoked times (never the tokens)."""
    with _keys(ctx, project) as keys:
        rows = keys.list()
    if not rows:
        say("no API keys: the server answers without one on 127.0.0.1 (`slmkit serve keys add NAME`)")
        return
    for key in rows:
        state = f"revoked {key.revoked_at}" if key.revoked_at else "active"
        groups = ", ".join(key.groups) or "public only"
        roles = ",".join(key.roles) or "-"
        say(
            f"{key.name:<20} {key.hint}...  {', '.join(key.models) or 'every model':<30} groups: {groups:<20} "
            f"roles: {roles:<18} "
            f"{key.created_at}  {state}"
        )


def keys_revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The key to revoke.")],
    project: SubProjectOption = None,
) -> None:
    """Revoke an API key: a running server refuses it (401) from the next request on."""
    with _keys(ctx, project) as keys:
        key = keys.revoke(name)
    say(f"revoked key {key.name} ({key.hint}...) at {key.revoked_at}")


def _keys(ctx: typer.Context, project: Path | None) -> KeyStore:
    from slmkit.serve.keys import KeyStore

    config = load(project or ctx.obj or Path("."), check_files=False)
    return KeyStore(config.state_dir / "keys.db")


def demo(
    example: Annotated[Path, typer.Argument(help="Example project to copy and run.")] = Path(
        "examples/support-tickets"
    ),
    workdir: Annotated[Path, typer.Option(help="Where the demo copy runs (replaced on each run).")] = Path(".demo"),
) -> None:
    """Run the whole chain on the example: data, train, eval, release, serve, answer."""
    from slmkit.pipeline import run_demo

    run_demo(example, workdir)


def loadtest(
    ref: Annotated[str | None, typer.Argument(help="3, an alias, or name@3 (default: serve.release).")] = None,
    project: ProjectOption = Path("."),
    clients: Annotated[int, typer.Option(min=1, help="Concurrent clients.")] = 16,
    seconds: Annotated[float, typer.Option(min=1, help="Measured seconds (after the warm-up).")] = 60.0,
    warmup: Annotated[float, typer.Option(min=0, help="Seconds of load before measuring.")] = 5.0,
    url: Annotated[
        str | None, typer.Option(help="Measure a gateway already running here (default: start one).")
    ] = None,
    api_key: Annotated[str | None, typer.Option(envvar="SLMKIT_API_KEY", help="Bearer key for the gateway.")] = None,
    record: Annotated[bool, typer.Option(help="Record the result as the release's latency evidence.")] = True,
) -> None:
    """Drive a release with concurrent clients; print req/s and latency, record it for `slmkit check`.

    Exits 10 when a request failed or p95 is over release.max_p95_latency_ms.
    """
    from slmkit.cli.releases import release_ref
    from slmkit.errors import LoadTestFailed
    from slmkit.serve.load import run_loadtest

    config = load(project, check_files=False)
    target = release_ref(config, ref) if ref else None
    test = run_loadtest(
        config,
        target,
        clients=clients,
        seconds=seconds,
        warmup_s=warmup,
        url=url,
        api_key=api_key,
        record=record,
        log=say,
    )
    s = test.stats.summary()
    say(
        f"{test.release.ref}: {s['requests']} requests in {s['seconds']:.0f}s, {s['requests_per_s']:.2f} req/s, "
        f"{s['completion_tokens_per_s']:.0f} completion tokens/s"
    )
    say(f"  latency p50 {s['p50_ms']:.0f} ms, p95 {s['p95_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms")
    say(f"  errors {s['errors']} {s['error_kinds'] or ''}; server RSS growth {s['rss_growth_mib']:+.0f} MiB")
    where = f"recorded as {test.release.ref}'s latency evidence" if test.evidence else "not recorded"
    if not test.passed:
        raise LoadTestFailed(f"FAIL: {test.reason} ({where})", hint="see `slmkit check` for the latency item")
    say(f"  PASS: {test.reason} ({where})")
