"""Dataset versions with their data cards, training runs with their loss curves, and eval reports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slmkit.charts import esc
from slmkit.errors import RegistryError
from slmkit.eval.plots import plots_html
from slmkit.registry.describe import HEADLINE
from slmkit.ui.context import Context
from slmkit.ui.layout import num, page, pager, status, table

PER_PAGE = 50


def datasets(ctx: Context) -> str:
    rows = []
    for d in reversed(ctx.registry.list_datasets(ctx.config.task.name)):
        c = d.counts
        rows.append(
            [
                f'<a href="/datasets/{esc(d.version)}">{esc(d.version)}</a>',
                esc((d.built_at or d.created_at)[:19].replace("T", " ")),
                *(num(c.get(k)) for k in ("input", "train", "validation", "gold", "rejected")),
                f"<code>{esc(d.gold_hash[:12])}</code>",
            ]
        )
    body = (
        table(
            ["version", "built", "rows in", "train", "validation", "gold", "rejected", "gold set"],
            rows,
            numeric=range(2, 7),
        )
        if rows
        else "<p>No dataset yet: run <code>slmkit data build</code>.</p>"
    )
    return page("Dataset versions", body, ctx.visitor, active="/datasets")


def dataset(ctx: Context, version: str) -> str:
    d = ctx.registry.get_dataset(version)
    c = d.counts
    facts = [
        ["digest", f"<code>sha256:{esc(d.digest)}</code>"],
        [
            "rows",
            esc(
                f"{c.get('input', '?')} in: {c.get('train', '?')} train, {c.get('validation', '?')} validation, "
                f"{c.get('gold', '?')} gold, {c.get('rejected', '?')} rejected"
            ),
        ],
        ["gold set", f"<code>sha256:{esc(d.gold_hash)}</code>"],
        ["built", esc(d.built_at or d.created_at)],
    ]
    body = table(["", ""], facts) + (
        f'<h2>Data card</h2><p><a href="/datasets/{esc(version)}/card">open the data card on its own</a></p>'
        f'<iframe class="card-frame" src="/datasets/{esc(version)}/card" title="data card of {esc(version)}"></iframe>'
    )
    return page(f"Dataset {version}", body, ctx.visitor, active="/datasets")


def data_card(ctx: Context, version: str) -> str:
    """The data card the build wrote (report.html in the dataset version), or drawn from its report.json."""
    from slmkit.data.card import render_card

    folder = ctx.registry.store.path(ctx.registry.get_dataset(version).digest)
    if (folder / "report.html").is_file():
        return (folder / "report.html").read_text(encoding="utf-8")
    if (folder / "report.json").is_file():
        return render_card(json.loads((folder / "report.json").read_text(encoding="utf-8")))
    raise RegistryError(f"dataset {version} has no data card in the store", hint="`slmkit registry verify`")


def runs(ctx: Context, page_no: int) -> str:
    name = ctx.config.task.name
    total = ctx.registry.counts(name)["runs"]
    released = {r.run_id: r.ref for r in ctx.registry.list_releases(name)}
    rows = []
    for run in ctx.registry.runs_page(name, PER_PAGE, page_no * PER_PAGE):
        m = run.metrics
        evaluated = ctx.registry.latest_eval(run.run_id)
        rows.append(
            [
                f'<a href="/runs/{esc(run.run_id)}">{esc(run.run_id)}</a>',
                esc(run.created_at[:19].replace("T", " ")),
                status("pass" if run.status == "completed" else "fail") if run.status != "running" else "running",
                esc(run.dataset_version),
                num(m.get("steps")),
                num(m.get("best_val_loss")),
                "–"
                if evaluated is None
                else f'<a href="/runs/{esc(run.run_id)}/eval">{status("pass" if evaluated.passed else "fail")}</a>',
                esc(released.get(run.run_id, "")),
            ]
        )
    body = pager("/runs", page_no, PER_PAGE, total) + table(
        ["run", "started", "status", "dataset", "steps", "best val loss", "gates", "released as"], rows, numeric=(4, 5)
    )
    return page("Training runs", body, ctx.visitor, active="/runs")


def run(ctx: Context, run_id: str) -> str:
    record = ctx.registry.find_run(run_id)
    if record is None:
        ctx.registry.get_run(run_id)  # raises the error that lists recent runs
        raise RegistryError(f"no training run '{run_id}'")
    m = record.metrics
    facts = [
        ["status", esc(record.status + (f": {record.error}" if record.error else ""))],
        ["dataset", f'<a href="/datasets/{esc(record.dataset_version)}">{esc(record.dataset_version)}</a>'],
        ["base model", f"<code>{esc(record.base_model.get('spec', record.base_model.get('model_id', '?')))}</code>"],
        ["adapter", f"<code>{esc(record.adapter_digest or '-')}</code>"],
        ["steps", esc(f"{m.get('steps', '?')} ({m.get('tokens', '?')} tokens, {m.get('tokens_per_s', '?')} tokens/s)")],
        [
            "validation loss",
            esc(
                f"{m.get('initial_val_loss', '?')} -> {m.get('best_val_loss', '?')} "
                f"(best at step {m.get('best_step', '?')})"
            ),
        ],
        ["method", esc(record.config.get("train", {}).get("method", "?"))],
    ]
    metrics_path = ctx.config.state_dir / "runs" / run_id / "metrics.jsonl"
    body = table(["", ""], facts) + "<h2>Loss</h2>" + _loss(metrics_path, run_id, m.get("best_step"))
    evaluated = ctx.registry.latest_eval(run_id)
    if evaluated is not None:
        verdict = status("pass" if evaluated.passed else "fail")
        body += f'<h2>Evaluation</h2><p><a href="/runs/{esc(run_id)}/eval">eval report</a>: gates {verdict}</p>'
    return page(f"Training run {run_id}", body, ctx.visitor, active="/runs")


def _loss(metrics_path: Path, run_id: str, best_step: int | None) -> str:
    from slmkit.train.observe import loss_chart

    if not metrics_path.is_file():
        return "<p class=muted>no metrics.jsonl for this run on this machine</p>"
    return f'<figure class="wide">{loss_chart(metrics_path, run_id, best_step)}</figure>'


def evaluation(ctx: Context, run_id: str) -> str:
    record = ctx.registry.latest_eval(run_id)
    if record is None:
        raise RegistryError(f"run {run_id} has no evaluation", hint=f"run `slmkit eval --run {run_id}`")
    report: dict[str, Any] = json.loads(ctx.registry.store.path(record.digest).read_text(encoding="utf-8"))
    gates = [
        [
            f"<code>{esc(g['gate'])}</code>",
            num(g.get("observed")),
            esc(_ci(g.get("ci95"))),
            num(g.get("threshold")),
            status("pass" if g["passed"] else "fail"),
        ]
        for g in report.get("gates", [])
    ]
    body = (
        f"<p>dataset <code>{esc(report.get('dataset_version'))}</code> · gold set "
        f"<code>sha256:{esc(str(report.get('gold_hash', ''))[:12])}</code>"
        f" · {esc(report.get('items'))} gold items · gates {status('pass' if report.get('passed') else 'fail')}</p>"
        + "<h2>Gates</h2>"
        + table(["gate", "observed", "95% CI", "needs", "result"], gates, numeric=(1, 3))
        + "<h2>Base vs adapter vs production</h2>"
        + _sides(report)
        + "".join(_regressions(report))
        + "".join(plots_html(report))
    )
    return page(f"Eval report: run {run_id}", body, ctx.visitor, active="/runs")


def _ci(ci: Any) -> str:
    return f"{ci[0]:.3f}–{ci[1]:.3f}" if ci and None not in ci else "–"


def _sides(report: dict[str, Any]) -> str:
    """Every side's headline metrics, with production's (from the paired comparison) beside them."""
    columns = {
        side: {m: v.get("value") for m, v in values.items()} for side, values in report.get("metrics", {}).items()
    }
    for alias, r in (report.get("regression") or {}).items():
        if r.get("against") and r.get("metrics"):
            columns[f"{alias} ({r['against']})"] = {m: c.get("release") for m, c in r["metrics"].items()}
    names = [m for m in HEADLINE if any(m in c for c in columns.values())]
    rows = [[esc(m), *(num(c.get(m)) for c in columns.values())] for m in names]
    return table(["metric", *columns], rows, numeric=range(1, len(columns) + 1))


def _regressions(report: dict[str, Any]) -> list[str]:
    """Per compared release: the gold ids the candidate got wrong that the release got right, and back."""
    parts = []
    for alias, r in (report.get("regression") or {}).items():
        if not r.get("against"):
            why = r.get("error") or "no release behind it yet"
            parts.append(f"<h2>Regression vs {esc(alias)}</h2><p class=muted>{esc(why)}</p>")
            continue
        by_id: dict[str, dict[str, list[str]]] = {}
        for metric, c in r.get("metrics", {}).items():
            for gold_id in c.get("right_to_wrong") or []:
                by_id.setdefault(gold_id, {"lost": [], "gained": []})["lost"].append(metric)
            for gold_id in c.get("wrong_to_right") or []:
                by_id.setdefault(gold_id, {"lost": [], "gained": []})["gained"].append(metric)
        rows = [
            [
                f"<code>{esc(gold_id)}</code>",
                f'<span class="bad">{esc(", ".join(v["lost"]))}</span>',
                f'<span class="ok">{esc(", ".join(v["gained"]))}</span>',
            ]
            for gold_id, v in sorted(by_id.items(), key=lambda kv: (-len(kv[1]["lost"]), kv[0]))
        ]
        lost = sum(1 for v in by_id.values() if v["lost"])
        parts.append(
            f"<h2>Regression list vs {esc(r['against'])} ({esc(alias)}): {lost} gold items got worse</h2>"
            f"<p class=muted>{esc(r.get('paired_items'))} paired items; right → wrong and wrong → right per metric</p>"
            + (table(["gold id", "right → wrong on", "wrong → right on"], rows) if rows else "<p>no item changed</p>")
        )
    return parts
