"""The console's page shell and the small pieces every page is made of: HTML, no script.

Every value that reaches a page goes through `esc` (slmkit.charts): task text, gold items and
answers are user data. Forms post to the console with the session's CSRF token; a visitor
without the role a form needs never sees the form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from slmkit.charts import CHART_CSS, esc
from slmkit.ui.security import Visitor

NAV = (
    ("/", "Overview"),
    ("/datasets", "Datasets"),
    ("/runs", "Training runs"),
    ("/releases", "Releases"),
    ("/monitoring", "Monitoring"),
    ("/audit", "Audit log"),
    ("/review", "Review"),
)

CSS = (
    """
:root{--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--bg:#f6f8fa;--accent:#0969da;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;color:var(--ink)}
header{display:flex;align-items:center;gap:24px;padding:10px 24px;border-bottom:1px solid var(--line)}
header{background:var(--bg)}
header .brand{font-weight:700}header nav a{margin-right:14px;color:var(--ink);text-decoration:none}
header nav a.on{font-weight:700;border-bottom:2px solid var(--accent)}
header .who{margin-left:auto;color:var(--muted);display:flex;gap:8px;align-items:center}
main{max-width:1180px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 12px}h2{font-size:17px;margin:24px 0 8px}
a{color:var(--accent)}code,pre{font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:var(--bg);border:1px solid var(--line);padding:8px;overflow:auto;white-space:pre-wrap}
table{border-collapse:collapse;margin:8px 0;width:100%}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:var(--bg);font-weight:600}td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.pass,.ok{color:var(--ok);font-weight:600}.fail,.bad{color:var(--bad);font-weight:600}
.missing,.warn{color:var(--warn);font-weight:600}.na,.muted{color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(210px,1fr));gap:12px;margin:8px 0}
.card{border:1px solid var(--line);border-radius:6px;padding:10px 12px;min-width:0;overflow-wrap:anywhere}
.card .big{font-size:20px;font-weight:600}.card .label{color:var(--muted);font-size:12px}
.flash{padding:8px 12px;border-radius:6px;margin:8px 0;border:1px solid}
.flash.error{background:#ffebe9;border-color:#ff8182}.flash.done{background:#dafbe1;border-color:#4ac26b}
form.inline{display:inline}form.act{border:1px solid var(--line);border-radius:6px;padding:10px;margin:8px 0}
input[type=text],input[type=password],select,textarea{font:inherit;padding:4px 6px;border:1px solid var(--line)}
input[type=text],input[type=password],select,textarea{border-radius:4px}
button{font:inherit;padding:4px 12px;border-radius:4px;border:1px solid var(--line);background:#fff;cursor:pointer}
button.primary{background:var(--accent);color:#fff;border-color:var(--accent)}
button.danger{background:var(--bad);color:#fff;border-color:var(--bad)}
.pill{display:inline-block;padding:0 8px;border-radius:10px;background:var(--bg);border:1px solid var(--line)}
.pill{font-size:12px}
.pager{margin:8px 0}.pager a{margin-right:10px}
iframe.card-frame{width:100%;height:900px;border:1px solid var(--line);border-radius:6px}
.item{border:1px solid var(--line);border-radius:6px;padding:10px;margin:10px 0}
.item .cols{display:grid;grid-template-columns:1fr 1fr 1fr;gap:10px}
.fields{display:flex;flex-wrap:wrap;gap:8px 16px;margin:6px 0}
.fields label{display:flex;flex-direction:column;font-size:12px}
"""
    + CHART_CSS
)


def page(title: str, body: str, visitor: Visitor, *, active: str = "", refresh_s: int | None = None) -> str:
    """A whole console page: header with the navigation and who is logged in, then `body`."""
    nav = "".join(f'<a href="{href}"{" class=on" if href == active else ""}>{esc(label)}</a>' for href, label in NAV)
    refresh = f'<meta http-equiv="refresh" content="{refresh_s}">' if refresh_s else ""
    if visitor.key is None:
        who = '<span>read-only</span><a href="/login">log in</a>'
    else:
        roles = ", ".join(visitor.key.roles) or "no roles: read-only"
        who = f"<span>{esc(visitor.key.name)} ({esc(roles)})</span>" + post_form(
            "/logout", visitor, "", "log out", cls="inline"
        )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">{refresh}'
        f"<title>{esc(title)} · slmkit</title><style>{CSS}</style></head><body>"
        f'<header><span class="brand">slmkit</span><nav>{nav}</nav><span class="who">{who}</span></header>'
        f"<main><h1>{esc(title)}</h1>{body}</main></body></html>"
    )


def post_form(action: str, visitor: Visitor, inner: str, button: str, *, cls: str = "act", style: str = "") -> str:
    """A POST form to `action` carrying the session's CSRF token."""
    button_class = f' class="{style}"' if style else ""
    return (
        f'<form method="post" action="{esc(action)}" class="{cls}">'
        f'<input type="hidden" name="csrf" value="{esc(visitor.csrf)}">{inner}'
        f"<button type=submit{button_class}>{esc(button)}</button></form>"
    )


def status(value: str) -> str:
    """A checklist or gate status, coloured."""
    cls = {"pass": "pass", "fail": "fail", "missing": "missing", "n/a": "na"}.get(value.lower(), "")
    return f'<span class="{cls}">{esc(value.upper())}</span>'


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, numeric: Sequence[int] = ()) -> str:
    """A table of already-escaped cells; `numeric` columns right-aligned."""
    head = "".join(f"<th{' class=num' if i in numeric else ''}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td{' class=num' if i in numeric else ''}>{c}</td>" for i, c in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def card(label: str, value: Any, detail: str = "") -> str:
    extra = f'<div class="label">{detail}</div>' if detail else ""
    return f'<div class="card"><div class="label">{esc(label)}</div><div class="big">{esc(value)}</div>{extra}</div>'


def flash(message: str | None, kind: str = "done") -> str:
    return f'<div class="flash {kind}" role="status">{esc(message)}</div>' if message else ""


def pre(lines: Sequence[str]) -> str:
    return f"<pre>{esc(chr(10).join(lines))}</pre>"


def num(value: Any) -> str:
    return "–" if value is None else f"{value:.3f}" if isinstance(value, float) else esc(value)


def pager(base: str, page_no: int, per_page: int, total: int) -> str:
    """Previous / next links over `total` rows."""
    last = max((total - 1) // per_page, 0)
    links = []
    if page_no > 0:
        links.append(f'<a href="{esc(base)}?page={page_no - 1}">&larr; newer</a>')
    links.append(f"<span class=muted>page {page_no + 1} of {last + 1} ({total:,} in all)</span>")
    if page_no < last:
        links.append(f'<a href="{esc(base)}?page={page_no + 1}">older &rarr;</a>')
    return f'<div class="pager">{"".join(links)}</div>'
