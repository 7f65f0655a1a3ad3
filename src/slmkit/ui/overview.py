"""The overview: the task spec, the base model, and the release in production with its checklist."""

from __future__ import annotations

import json
from typing import Any

from slmkit.charts import esc
from slmkit.registry.checklist import Checklist, release_checklist
from slmkit.registry.describe import HEADLINE
from slmkit.ui.context import Context
from slmkit.ui.layout import card, num, page, status, table


def overview(ctx: Context) -> str:
    config, registry = ctx.config, ctx.registry
    name, alias = config.task.name, config.release.alias
    current = registry.current(name, alias)
    lock = registry.gold_lock(name)
    counts = registry.counts(name)
    parts = [
        '<div class="cards">',
        card(f"{alias}", current.ref if current else "none yet", _since(current)),
        card("releases", counts["releases"]),
        card("training runs", counts["runs"]),
        card("dataset versions", counts["datasets"]),
        card("gold set", f"sha256:{lock.gold_hash[:12]}" if lock else "not locked", _locked(lock)),
        _alerts_card(ctx),
        "</div>",
    ]
    if current is None:
        parts.append(f"<p>No release behind <b>{esc(alias)}</b> yet: run <code>slmkit release</code>.</p>")
    else:
        from slmkit.monitor.rules import release_rule_checks

        checklist = release_checklist(
            registry,
            current,
            alerts=release_rule_checks(config, registry, current, quick=True),
            blocking=config.release.blocking,
        )
        parts += [
            f'<h2>{esc(alias)}: <a href="/releases/{current.version}">{esc(current.ref)}</a></h2>',
            _release_facts(current),
            "<h2>Production checklist</h2>",
            checklist_table(checklist),
            "<h2>Headline metrics on the gold set</h2>",
            _metrics(current.provenance.get("eval", {}).get("metrics", {})),
        ]
    parts += ["<h2>Task</h2>", _task(ctx), "<h2>Base model</h2>", _base_model(ctx, current)]
    return page(f"{name}: overview", "".join(parts), ctx.visitor, active="/")


def checklist_table(checklist: Checklist) -> str:
    rows = [
        [status(item.status), esc(item.title), esc(item.evidence), "blocking" if item.blocking else ""]
        for item in checklist.items
    ]
    return table(["status", "item", "evidence", ""], rows)


def _alerts_card(ctx: Context) -> str:
    """How many alerts fire now (read from the request log without writing), linking to the monitoring page."""
    from slmkit.errors import StageError
    from slmkit.ui.monitoring import log_state

    try:
        _, states, _ = log_state(ctx.config)
    except StageError as exc:  # a log written by an older slmkit: the page still shows the rest
        return card("alerts", "unknown", esc(exc.message))
    firing = sorted({f"{a['rule']} ({a['release']})" for a in states if a["state"] == "firing"})
    pending = sum(a["state"] == "pending" for a in states)
    detail = esc("; ".join(firing)) if firing else f"{len(states)} rule × release state(s) judged"
    if pending:
        detail += f" · {pending} pending"
    value = f"{len(firing)} firing" if firing else "none firing"
    return card("alerts", value, f'{detail} · <a href="/monitoring">monitoring</a>')


def _since(release: Any) -> str:
    return esc(f"since {release.created_at[:10]} · {release.note}") if release else ""


def _locked(lock: Any) -> str:
    return esc(f"locked {lock.locked_at[:10]} from {lock.dataset_version}") if lock else ""


def _release_facts(release: Any) -> str:
    rows = [
        ["released", esc(f"{release.created_at[:19].replace('T', ' ')} by {release.created_by}")],
        ["note", esc(release.note or "-")],
        ["run", f'<a href="/runs/{esc(release.run_id)}">{esc(release.run_id)}</a>'],
        ["dataset", f'<a href="/datasets/{esc(release.dataset_version)}">{esc(release.dataset_version)}</a>'],
        ["adapter", f"<code>sha256:{esc(release.adapter_digest[:16])}</code>"],
        ["eval report", f'<a href="/runs/{esc(release.run_id)}/eval">base vs adapter vs production</a>'],
    ]
    return table(["", ""], rows)


def _metrics(metrics: dict[str, dict[str, float | None]]) -> str:
    sides = [s for s in ("base", "adapter", "adapter_free") if s in metrics]
    if not sides:
        return "<p class=muted>not recorded with this release</p>"
    rows = [[esc(m), *(num(metrics[s].get(m)) for s in sides)] for m in HEADLINE if any(m in metrics[s] for s in sides)]
    return table(["metric", *sides], rows, numeric=range(1, len(sides) + 1))


def _task(ctx: Context) -> str:
    cfg = ctx.config.task
    schema = ctx.config.output_schema()
    props = schema.get("properties", {})
    rows = []
    for field, spec in props.items():
        kind = spec.get("enum") and "one of " + ", ".join(json.dumps(v) for v in spec["enum"])
        kind = kind or json.dumps(spec.get("type", "any"))
        flag = " (label)" if field == cfg.label_field else ""
        rows.append([f"<code>{esc(field)}</code>{esc(flag)}", esc(kind)])
    facts = [
        ["description", esc(cfg.description or "-")],
        ["input fields", esc(", ".join(cfg.input_fields) or "-")],
        ["refusal", esc(json.dumps(cfg.refusal.output) if cfg.refusal and cfg.refusal.output else "-")],
        ["escalation", esc(cfg.escalation.description if cfg.escalation else "-")],
        ["gates", esc("; ".join(str(g) for g in ctx.config.eval.gates) or "-")],
    ]
    return table(["", ""], facts) + "<h3>Output schema</h3>" + table(["field", "values"], rows)


def _base_model(ctx: Context, release: Any) -> str:
    rows = [["configured", f"<code>{esc(ctx.config.base_model)}</code>"]]
    if release is not None:
        base = {**release.base_model, **release.provenance.get("base_model", {})}
        for key in ("model_id", "spec", "sha256", "revision", "source"):
            if base.get(key) is not None:
                rows.append([esc(f"{key.replace('_', ' ')} ({release.ref})"), f"<code>{esc(base[key])}</code>"])
    return table(["", ""], rows)
