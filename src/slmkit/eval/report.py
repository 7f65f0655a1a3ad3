"""report.html: the eval report as one self-contained page (no scripts, no network)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from slmkit import atomic
from slmkit.charts import CHART_CSS
from slmkit.eval.plots import plots_html

_STYLE = (
    """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}
th{background:#f3f3f3}td.l,th.l{text-align:left}.pass{color:#0a7d28;font-weight:600}
.fail{color:#b3261e;font-weight:600}code{background:#f5f5f5;padding:1px 3px}pre{white-space:pre-wrap;margin:0}
:root{--ink:#222;--muted:#666}
"""
    + CHART_CSS
)


TABLE_MAX_LABELS = 20


def write_html(report: dict[str, Any], path: Path) -> None:
    """Metrics side by side, gates with intervals, confusion matrices, and the misses."""
    e = html.escape
    parts = [
        f"<!doctype html><meta charset=utf-8><title>slmkit eval: {e(report['task'])}</title>",
        f"<style>{_STYLE}</style><h1>Evaluation: {e(report['task'])}</h1>",
        f"<p>run <code>{e(report['run_id'])}</code> · dataset <code>{e(report['dataset_version'])}</code>"
        f" · gold set sha256 <code>{e(report['gold_hash'][:16])}</code> · {report['items']} items"
        f" · engine {e(report['engine'])}</p>",
    ]
    verdict = "pass" if report["passed"] else "fail"
    parts.append(f"<h2>Gates: <span class={verdict}>{verdict.upper()}</span></h2>")
    parts.append("<table><tr><th class=l>gate</th><th>observed</th><th>95% CI</th><th>needs</th><th>result</th></tr>")
    for g in report["gates"]:
        ci = g.get("ci95") or [None, None]
        parts.append(
            f"<tr><td class=l><code>{e(g['gate'])}</code></td><td>{_num(g['observed'])}</td>"
            f"<td>{_num(ci[0])}–{_num(ci[1])}</td><td>{_num(g['threshold'])}</td>"
            f"<td class={'pass' if g['passed'] else 'fail'}>{'pass' if g['passed'] else 'fail'}</td></tr>"
        )
    parts.append("</table>")

    parts.extend(_regression_html(report.get("regression", {})))
    parts.extend(plots_html(report))

    sides = list(report["metrics"])
    parts.append(
        "<h2>Metrics</h2><table><tr><th class=l>metric</th>" + "".join(f"<th>{e(s)}</th>" for s in sides) + "</tr>"
    )
    names = list(report["metrics"][sides[-1]])
    for name in names:
        cells = "".join(f"<td>{_num(report['metrics'][s].get(name, {}).get('value'))}</td>" for s in sides)
        parts.append(f"<tr><td class=l>{e(name)}</td>{cells}</tr>")
    parts.append("</table>")

    for side, table in report.get("confusion", {}).items():
        if not table:
            continue
        if len(table) > TABLE_MAX_LABELS:  # a 77 x 77 table per side reads worse than the figures above
            parts.append(
                f"<p>Confusion matrix of {e(side)}: {len(table)} labels, in report.json (<code>confusion</code>); "
                "the most confused pairs and the heat map are above.</p>"
            )
            continue
        columns = sorted({c for row in table.values() for c in row})
        parts.append(
            f"<h3>Confusion matrix: {e(side)} (rows gold, columns predicted)</h3><table><tr><th></th>"
            + "".join(f"<th>{e(c)}</th>" for c in columns)
            + "</tr>"
        )
        for gold_label, row in sorted(table.items()):
            total = sum(row.values()) or 1
            cells = "".join(
                f"<td style='background:rgba(30,100,200,{row.get(c, 0) / total:.2f})'>{row.get(c, 0) or ''}</td>"
                for c in columns
            )
            parts.append(f"<tr><th class=l>{e(gold_label)}</th>{cells}</tr>")
        parts.append("</table>")

    last = "adapter" if "adapter" in sides else sides[-1]  # the side gates read (as served)
    misses = [p for p in report["predictions"] if not _matches(p, last)]
    parts.append(
        f"<h2>Items the {e(last)} got wrong ({len(misses)})</h2><table>"
        "<tr><th class=l>id</th><th class=l>input</th><th class=l>gold</th><th class=l>answer</th></tr>"
    )
    for p in misses[:200]:
        parts.append(
            f"<tr><td class=l>{e(str(p['id']))}</td><td class=l><pre>{e(p['input'][:400])}</pre></td>"
            f"<td class=l><pre>{e(_compact(p['gold']))}</pre></td>"
            f"<td class=l><pre>{e(p[last]['text'][:300])}</pre></td></tr>"
        )
    parts.append("</table>")
    atomic.write_text(path, "\n".join(parts))


def _regression_html(regressions: dict[str, Any]) -> list[str]:
    """Per compared release: each metric's difference with its interval, and the items that flipped."""
    e = html.escape
    parts = []
    for alias, r in regressions.items():
        if r.get("against") is None or r.get("error"):
            why = r.get("error") or f"no release behind '{alias}' yet"
            parts.append(f"<h2>Regression vs {e(alias)}</h2><p>not compared: {e(why)}</p>")
            continue
        parts.append(
            f"<h2>Regression vs {e(r['against'])} ({e(alias)}), {r['paired_items']} paired items</h2><table>"
            "<tr><th class=l>metric</th><th>release</th><th>candidate</th><th>difference</th><th>95% CI</th>"
            "<th>McNemar p</th><th class=l>right → wrong</th><th class=l>wrong → right</th></tr>"
        )
        for name, c in r["metrics"].items():
            lost, gained = c.get("right_to_wrong"), c.get("wrong_to_right")
            parts.append(
                f"<tr><td class=l>{e(name)}</td><td>{_num(c['release'])}</td><td>{_num(c['candidate'])}</td>"
                f"<td>{_num(c['difference'])}</td><td>{_num(c['ci95'][0])}–{_num(c['ci95'][1])}</td>"
                f"<td>{_num(c.get('p_value'))}</td><td class=l>{e(', '.join(lost[:20])) if lost else ''}</td>"
                f"<td class=l>{e(', '.join(gained[:20])) if gained else ''}</td></tr>"
            )
        parts.append("</table>")
    return parts


def _matches(prediction: dict[str, Any], side: str) -> bool:
    return bool(prediction.get(side, {}).get("exact"))


def _compact(value: Any) -> str:
    import json

    return json.dumps(value, ensure_ascii=False)


def _num(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}"
