"""`slmkit monitor [REF]`, `monitor alerts`, `monitor rules`, `monitor replay`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from slmkit.cli.common import ProjectOption, load, say
from slmkit.errors import SlmkitError

SinceOption = Annotated[
    str, typer.Option("--since", help="Start of the span: a duration back from now (24h, 90m, 7d) or a UTC time.")
]
WindowOption = Annotated[
    str, typer.Option("--window", help="Width of the time-series buckets and of the last window's drift tests.")
]


class RefFirstGroup(TyperGroup):
    """`slmkit monitor [REF] [options]`: a first bare word that is not a subcommand is the release."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["--release", args[0], *args[1:]]
        return super().parse_args(ctx, args)


def monitor(
    ctx: typer.Context,
    release: Annotated[
        str | None, typer.Option("--release", help="REF: 3, an alias, or name@3 (default: every release that served).")
    ] = None,
    project: ProjectOption = Path("."),
    since: SinceOption = "24h",
    window: WindowOption = "1h",
    out: Annotated[
        Path | None, typer.Option(help="Where monitor.json and monitor.html go (default .slmkit/monitor).")
    ] = None,
) -> None:
    """Per release: volume, rates, latency, label mix, confidence and drift over a span; writes monitor.json/html."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = project
        return
    from slmkit.cli.releases import release_ref
    from slmkit.monitor.run import run_monitor, write_reports

    config = load(project, check_files=False)
    now = datetime.now(UTC)
    result = run_monitor(
        config,
        ref=release_ref(config, release) if release else None,
        since=parse_since(since, now),
        window_s=parse_duration(window, "--window"),
        now=now,
    )
    for line in result.lines():
        say(line)
    json_path, html_path = write_reports(result, out or config.state_dir / "monitor")
    say(f"wrote {json_path} and {html_path}")


def alerts(
    ctx: typer.Context,
    project: Annotated[Path | None, typer.Option("--project", "-p", help="Project directory.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the outcomes as JSON.")] = False,
    exit_code: Annotated[bool, typer.Option("--exit-code", help="Exit with 11 when an alert is firing.")] = False,
) -> None:
    """Evaluate the alert rules once (for cron): move their states, notify the webhook, print each."""
    from slmkit.errors import AlertFiring
    from slmkit.monitor.alerts import evaluate_alerts

    config = load(project or ctx.obj or Path("."), check_files=False)
    if not config.monitor.alerts:
        raise SlmkitError("no alert rules in slmkit.yaml", hint="add rules under monitor.alerts (see `slmkit init`)")
    run = evaluate_alerts(config)
    if as_json:
        say(json.dumps([_outcome(o) for o in run.outcomes], indent=2, default=str))
    else:
        if not run.outcomes:
            say("no release served in any rule's window: nothing to judge")
        for outcome in run.outcomes:
            say(outcome.line())
        for sent in run.notified:
            say(f"notified {config.monitor.webhook.url if config.monitor.webhook else ''}: {sent['alert']} "
                f"{sent['state']} for {sent['release']}")  # fmt: skip
    if exit_code and run.firing:
        raise AlertFiring(
            f"{len(run.firing)} alert(s) firing: " + "; ".join(f"{o.rule} ({o.release})" for o in run.firing)
        )


def rules(
    ctx: typer.Context,
    project: Annotated[Path | None, typer.Option("--project", "-p", help="Project directory.")] = None,
    out: Annotated[Path, typer.Option(help="Directory for the two files.")] = Path("monitoring"),
) -> None:
    """Write the alert rules as Prometheus alerting rules, and a Grafana dashboard of the same series."""
    import yaml

    from slmkit.monitor.prometheus import dashboard, rules_file

    config = load(project or ctx.obj or Path("."), check_files=False)
    if not config.monitor.alerts:
        raise SlmkitError("no alert rules in slmkit.yaml", hint="add rules under monitor.alerts (see `slmkit init`)")
    out.mkdir(parents=True, exist_ok=True)
    rules_path, board_path = out / "prometheus-rules.yml", out / "grafana-dashboard.json"
    rules_path.write_text(yaml.safe_dump(rules_file(config), sort_keys=False, width=1000), encoding="utf-8")
    board_path.write_text(json.dumps(dashboard(config), indent=2), encoding="utf-8")
    say(f"wrote {rules_path} ({len(config.monitor.alerts)} alert rule(s); check with `promtool check rules`)")
    say(f"wrote {board_path} (import into Grafana; pick the Prometheus that scrapes /metrics)")


def replay(
    ctx: typer.Context,
    requests: Annotated[
        Path, typer.Argument(help='JSONL: one record of input fields (or {"messages": [...]}) a line.')
    ],
    url: Annotated[str, typer.Option(help="The server's OpenAI base URL.")] = "http://127.0.0.1:8000/v1",
    model: Annotated[str | None, typer.Option(help="Model to ask (default: the task's name).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Send only the first N requests.")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Requests in flight at once.")] = 8,
    api_key: Annotated[str | None, typer.Option(envvar="SLMKIT_API_KEY", help="Bearer key for the server.")] = None,
    project: Annotated[Path | None, typer.Option("--project", "-p", help="Project directory.")] = None,
) -> None:
    """Send recorded requests through a running server with the openai client (e.g. the drift drill's traffic)."""
    from slmkit.monitor.replay import read_requests
    from slmkit.monitor.replay import replay as send

    config = load(project or ctx.obj or Path("."), check_files=False)
    messages = read_requests(requests, config.task.input_fields)[:limit]
    stats = send(url, model or config.task.name, messages, api_key=api_key, concurrency=concurrency)
    answered_by = ", ".join(f"{k} {v}" for k, v in sorted(stats.releases.items())) or "none"
    say(
        f"{stats.answered}/{stats.sent} answered in {stats.seconds:.1f}s ({answered_by}); "
        f"errors: {stats.errors or 'none'}"
    )


def parse_duration(text: str, option: str) -> float:
    from slmkit.config import duration_seconds, is_duration

    if not is_duration(text) or duration_seconds(text) <= 0:
        raise SlmkitError(f"{option} {text!r} is not a duration", hint="write a number and s, m, h or d, e.g. 1h")
    return duration_seconds(text)


def parse_since(text: str, now: datetime) -> datetime:
    """'24h' (back from now) or an ISO time (UTC unless it says otherwise)."""
    if text[-1:] in ("s", "m", "h", "d") and text[:-1].isdigit():
        return now - timedelta(seconds=parse_duration(text, "--since"))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise SlmkitError(
            f"--since {text!r} is neither a duration nor a time", hint="e.g. --since 24h or --since 2026-12-01T08:00"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _outcome(outcome: Any) -> dict[str, Any]:
    return {
        "rule": outcome.rule,
        "release": outcome.release,
        "state": outcome.state,
        "previous": outcome.previous,
        "value": outcome.value,
        "breached": outcome.breached,
        "evidence": outcome.evidence,
    }
