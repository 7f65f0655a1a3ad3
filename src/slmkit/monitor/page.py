"""monitor.html: one self-contained page (inline SVG, no script, no network) of a MonitorResult."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from slmkit.charts import CHART_CSS, COLOURS, PALETTE, bar_chart, esc, figure, histogram, line_chart, table

if TYPE_CHECKING:
    from slmkit.monitor.run import MonitorResult, ReleaseReport

# The classes the sections use beyond the charts' own (a page that embeds them includes this).
SECTION_CSS = """
.drift,.firing{color:#b3261e;font-weight:600}.ok{color:#0a7d28;font-weight:600}.muted{color:#666}
.pending{color:#9a6700;font-weight:600}.resolved{color:#0a7d28}.inactive{color:#666}
"""
_STYLE = (
    """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f3f3f3}.num{text-align:right;font-variant-numeric:tabular-nums}
:root{--ink:#222;--muted:#666}
"""
    + SECTION_CSS
    + CHART_CSS
)
CONFIDENCE_EDGES = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0]


def render_page(result: MonitorResult) -> str:
    """monitor.html: the span, then `render_sections`."""
    refs = [r.release for r in result.releases]
    head = [
        f"<!doctype html><html lang=en><meta charset=utf-8><title>slmkit monitor: {esc(result.task)}</title>",
        f"<style>{_STYLE}</style><h1>Monitoring: {esc(result.task)}</h1>",
        f"<p class=muted>{esc(f'{result.since:%Y-%m-%d %H:%M}')} → {esc(f'{result.until:%Y-%m-%d %H:%M}')} UTC · "
        f"buckets of {result.window_s / 60:g} min · releases: {esc(', '.join(refs) or 'none')}</p>",
    ]
    return "\n".join(head) + "\n" + render_sections(result)


def render_sections(result: MonitorResult) -> str:
    """The report's sections (alerts, recent alert events, the span's table, time series, each release's
    drift tests, label mix and confidences) as HTML to place in a page that includes SECTION_CSS and
    CHART_CSS; the web console's monitoring page shows them."""
    refs = [r.release for r in result.releases]
    colours = {ref: PALETTE[i % len(PALETTE)] for i, ref in enumerate(refs)}
    parts = [_alerts(result), _events(result)]
    if not result.releases:
        parts.append('<section id="empty"><p>No requests in this span.</p></section>')
        return "\n".join(parts) + "\n"
    parts.append(_summary(result))
    parts.append(_time_series(result, colours))
    for report in result.releases:
        parts.append(_release(report, result.reference_confidences.get(report.release, [])))
    return "\n".join(parts) + "\n"


def evidence_text(evidence: dict[str, Any]) -> str:
    """An alert's evidence in one line: the value against the threshold, on which requests, and a drift
    test's statistics (or why it was not judged)."""
    value = evidence.get("value")
    shown = "no value" if value is None else f"{value:.4g}"
    out = f"{evidence.get('metric', '?')} {shown} (alert when {evidence.get('op', '?')} {evidence.get('threshold')})"
    out += f" on {evidence.get('requests', 0)} requests"
    start, end = evidence.get("window_start"), evidence.get("window_end")
    if start and end:
        out += f" in {start[11:19]}–{end[11:19]} UTC ({evidence.get('window', '')})"
    tests = {evidence["metric"].split("_drift")[0]: evidence["test"]} if "test" in evidence else {}
    for name, info in (tests or evidence.get("tests") or {}).items():
        out += (
            f"; {name} test: statistic {info['statistic']:.4g}, p (Holm) {info['p_adjusted']:.3g}, "
            f"{info['effect_name']} {info['effect']:.4g}, n {info['n']} vs {info['n_reference']}"
        )
    if evidence.get("why"):  # too few requests, or no value (a drift test that did not run says why)
        out += f"; not judged: {evidence['why']}"
    elif evidence.get("test_skipped"):
        out += f"; test not run: {evidence['test_skipped']}"
    return out


def _summary(result: MonitorResult) -> str:
    from slmkit.monitor.run import TABLE, _fmt

    headers = ["metric", *(r.release for r in result.releases)]
    rows = [
        f"<tr><td>{esc(metric)}</td>"
        + "".join(f'<td class="num">{esc(_fmt(r.span.metrics.get(metric)))}</td>' for r in result.releases)
        + "</tr>"
        for metric in TABLE
    ]
    numeric = list(range(1, len(headers)))
    return f'<section id="summary"><h2>Over the span</h2>{table(headers, rows, numeric=numeric)}</section>'


def _alerts(result: MonitorResult) -> str:
    if not result.alerts:
        return '<section id="alerts"><h2>Alerts</h2><p class=muted>No alert rule has been evaluated yet.</p></section>'
    rows = []
    for a in result.alerts:
        value = "–" if a.get("value") is None else f"{a['value']:.4g}"
        rows.append(
            f'<tr data-state="{esc(a["state"])}"><td class="{esc(a["state"])}">{esc(a["state"].upper())}</td>'
            f'<td>{esc(a["rule"])}</td><td>{esc(a["release"])}</td><td class="num">{esc(value)}</td>'
            f"<td>{esc(_when(a['since']))}</td><td>{esc(_when(a['evaluated_at']))}</td>"
            f"<td class=muted>{esc(evidence_text(a.get('evidence') or {}))}</td></tr>"
        )
    headers = ["state", "rule", "release", "value", "since (UTC)", "judged at (UTC)", "evidence"]
    return f'<section id="alerts"><h2>Alerts</h2>{table(headers, rows, numeric=[3])}</section>'


def _events(result: MonitorResult) -> str:
    if not result.events:
        return '<section id="events"><h2>Recent alert events</h2><p class=muted>None yet.</p></section>'
    rows = []
    for e in result.events:
        if e.get("notified_at"):
            notified = f"sent {_when(e['notified_at'])}"
        elif e.get("notify_error"):
            notified = f"not sent ({e['notify_attempts']} tries): {e['notify_error']}"
        else:
            notified = "–"
        rows.append(
            f'<tr data-state="{esc(e["state"])}"><td>{esc(_when(e["ts"]))}</td><td>{esc(e["rule"])}</td>'
            f"<td>{esc(e['release'])}</td>"
            f'<td><span class="{esc(e["previous"])}">{esc(e["previous"])}</span> → '
            f'<span class="{esc(e["state"])}">{esc(e["state"])}</span></td>'
            f"<td class=muted>{esc(evidence_text(e.get('evidence') or {}))}</td><td>{esc(notified)}</td></tr>"
        )
    headers = ["at (UTC)", "rule", "release", "change", "evidence", "webhook"]
    return f'<section id="events"><h2>Recent alert events</h2>{table(headers, rows)}</section>'


def _when(stamp: str) -> str:
    """A log timestamp (2026-12-06T17:18:50.658Z) as 2026-12-06 17:18:50."""
    return stamp[:19].replace("T", " ")


def _time_series(result: MonitorResult, colours: dict[str, str]) -> str:
    span_s = (result.until - result.since).total_seconds()
    unit, scale = ("minutes", 60.0) if span_s <= 3 * 3600 else ("hours", 3600.0)

    def points(report: ReleaseReport, metric: str) -> list[tuple[float, float]]:
        return [(b["t"] / scale, b[metric]) for b in report.series if b.get(metric) is not None]

    charts = []
    share = (0.0, 1.0)
    for metric, title, y_range in (
        ("requests", "Requests per bucket", (0.0, None)),
        ("schema_valid_rate", "Schema-valid on the first try", share),
        ("refusal_rate", "Refusals", share),
        ("flagged_rate", "Inputs unlike any training input (flagged)", share),
        ("confidence_p50", "Median confidence", share),
        ("latency_p95_ms", "Latency p95 (ms)", (0.0, None)),
    ):
        series = [(r.release, points(r, metric)) for r in result.releases]
        if not any(pts for _, pts in series):
            charts.append(f'<h3>{esc(title)}</h3><p class=muted data-empty="{esc(metric)}">No values in this span.</p>')
            continue
        chart = line_chart(
            f"series-{metric}",
            title,
            series,
            x_label=f"{unit} since the start (each point: the {result.window_s / 60:g} minutes from there)",
            colours=colours,
            y_range=y_range,
            x_range=(0.0, span_s / scale),
        )
        charts.append(f"<h3>{esc(title)}</h3>" + figure(chart, []))
    return '<section id="series"><h2>Over time</h2>' + "".join(charts) + "</section>"


def _release(report: ReleaseReport, reference_confidences: list[float]) -> str:
    anchor = "release-" + "".join(ch if ch.isalnum() else "-" for ch in report.release)
    parts = [f'<section id="{esc(anchor)}"><h2>{esc(report.release)}</h2>']
    for name, snap in (("the span", report.span), ("the last window", report.last)):
        if snap.drift is None:
            continue
        verdict = '<span class="drift">DRIFT</span>' if snap.drift.drift else '<span class="ok">no drift</span>'
        rows = []
        for test, info in snap.drift.as_dict()["tests"].items():
            cls = "drift" if info["drift"] else "ok"
            rows.append(
                f'<tr><td>{esc(test)}</td><td class="{cls}">{"drift" if info["drift"] else "ok"}</td>'
                f'<td class="num">{info["n"]}</td><td class="num">{info["n_reference"]}</td>'
                f'<td class="num">{info["statistic"]:.4g}</td><td class="num">{info["p_value"]:.3g}</td>'
                f'<td class="num">{info["p_adjusted"]:.3g}</td><td>{esc(info["effect_name"])} '
                f"{info['effect']:.4g}</td><td class=muted>{esc(info['reason'])}</td></tr>"
            )
        for test, why in snap.drift.skipped.items():
            rows.append(
                f"<tr><td>{esc(test)}</td><td class=muted>not run</td><td colspan=7 class=muted>{esc(why)}</td></tr>"
            )
        headers = ["test", "verdict", "n", "reference", "statistic", "p", "p (Holm)", "effect", "why"]
        parts.append(
            f"<h3>Drift over {name} ({snap.metrics['requests']} requests): {verdict}</h3>"
            + table(headers, rows, numeric=[2, 3, 4, 5, 6], cls="drift-tests")
        )
    labels = report.span.metrics.get("labels") or {}
    eval_labels = report.reference.get("eval_labels") or {}
    train_labels = report.reference.get("train_labels") or {}
    if labels or eval_labels:
        totals = {k: sum(v.values()) or 1 for k, v in (("t", labels), ("e", eval_labels), ("r", train_labels))}
        rows_: list[tuple[str, list[tuple[str, int]], str]] = []
        for label in sorted(set(labels) | set(eval_labels) | set(train_labels)):
            for series, counts, key in (
                ("served", labels, "t"),
                ("gold", eval_labels, "e"),
                ("train", train_labels, "r"),
            ):
                if counts:
                    share = counts.get(label, 0) / totals[key]
                    rows_.append((f"{label} · {_SERIES[series]}", [(series, round(share * 1000))], f"{share:.1%}"))
        chart = bar_chart(
            f"labels-{anchor}",
            "Label shares: traffic, the release's answers on the gold set, training",
            rows_,
            top=1000,
        )
        keys = "".join(
            f'<li><span class="swatch" style="background:{COLOURS[s]}"></span>{esc(_SERIES[s])}</li>'
            for s in ("served", "gold", "train")
        )
        parts.append(f'<h3>Label mix</h3><figure class="wide">{chart}<ul class="legend">{keys}</ul></figure>')
    traffic = report.confidence_sample
    if traffic or reference_confidences:
        parts.append("<h3>Confidence (probability of the least likely answer token)</h3><div class=multiples>")
        for series, values in (("served", traffic), ("gold", reference_confidences)):
            counts = _bins(values, CONFIDENCE_EDGES)
            parts.append(
                histogram(
                    f"confidence-{series}-{anchor}",
                    f"{_SERIES[series]} ({len(values)})",
                    CONFIDENCE_EDGES,
                    counts,
                    series,
                )
            )
        parts.append("</div>")
    if report.span.notes:
        notes = "".join(f"<li>{esc(k)}: {esc(v)}</li>" for k, v in report.span.notes.items())
        parts.append(f"<h3>What could not be compared</h3><ul class=muted>{notes}</ul>")
    parts.append("</section>")
    return "".join(parts)


# Colours come from the series names: the traffic, the release's answers on the gold set, its training labels.
_SERIES = {"served": "traffic", "gold": "eval answers", "train": "training"}


def _bins(values: list[float], edges: list[float]) -> list[int]:
    counts = [0] * (len(edges) - 1)
    for value in values:
        for i in range(len(edges) - 1):
            if value < edges[i + 1] or i == len(edges) - 2:
                counts[i] += 1
                break
    return counts
