"""Inline SVG charts and HTML tables for slmkit's self-contained report pages.

The data card draws its charts with these, and the eval report can reuse them: a page built
from them needs no JavaScript, no web font and no network, so it opens offline and can be
archived with the artifact it describes. Output is deterministic (no ids or timestamps drawn at
random), as content-hashed artifacts need. Every string that reaches the page goes through `esc`.

This module sits beside `errors` at the bottom of the import graph and uses only the standard
library, so any stage (data, eval, monitor) may import it without depending on another stage.
The page that embeds the charts includes `CHART_CSS` and defines the `--ink` and `--muted`
colours; tables right-align their `numeric` columns with the page's `.num` class.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from typing import Any

# Okabe-Ito colours: told apart by colour-blind readers and in greyscale print.
COLOURS = {
    "train": "#0072B2",
    "validation": "#E69F00",
    "gold": "#009E73",
    "kept": "#0072B2",
    "rejected": "#D55E00",
    # training rows by origin (the data card's synthetic section)
    "real": "#0072B2",
    "synthetic": "#E69F00",
    # eval report sides
    "base": "#999999",
    "adapter": "#0072B2",
    "adapter_free": "#56B4E9",
    "adapter_constrained": "#56B4E9",
    "production": "#D55E00",
    "served": "#CC79A7",
}
NEUTRAL = "#56B4E9"  # any series without a colour of its own
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")  # for series in order


# ----------------------------------------------------------------------------- charts (inline SVG)


def bar_chart(
    name: str, title: str, rows: Sequence[tuple[str, Sequence[tuple[str, int]], str]], *, top: int = 0
) -> str:
    """Horizontal bars, one row per label; a row's (series, value) segments stack left to right.

    The label column is as wide as the longest label needs (names are never cut: a label that
    differs from another only at its end must stay readable), the bar area stays 420 wide.
    """
    label_w = max(170, text_width(max((label for label, _, _ in rows), key=len, default="")) + 16)
    value_w, row_h, bar_h, area = 170, 26, 16, 420
    width = label_w + area + value_w
    top = max(top, *(sum(v for _, v in segs) for _, segs, _ in rows), 1)
    height = row_h * len(rows) + 8
    parts = [
        f'<svg class="chart" data-chart="{name}" role="img" aria-labelledby="{name}-title" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{name}-title">{esc(title)}</title>',
    ]
    for i, (label, segments, value_text) in enumerate(rows):
        y = 4 + i * row_h
        mid = y + row_h / 2
        parts.append(
            f'<text x="{label_w - 10}" y="{mid:.1f}" dy="0.35em" text-anchor="end" class="label">{esc(label)}'
            f"<title>{esc(label)}</title></text>"
        )
        x = float(label_w)
        for series, value in segments:
            if value <= 0:
                continue
            w = max(value / top * area, 1.5)
            colour = COLOURS.get(series, NEUTRAL)
            parts.append(
                f'<rect class="bar s-{esc(series)}" x="{x:.1f}" y="{mid - bar_h / 2:.1f}" width="{w:.1f}" '
                f'height="{bar_h}" fill="{colour}"><title>{esc(label)}, {esc(series)}: {fmt_num(value)}</title></rect>'
            )
            x += w
        parts.append(f'<text x="{x + 8:.1f}" y="{mid:.1f}" dy="0.35em" class="value">{esc(value_text)}</text>')
    parts.append(f'<line x1="{label_w}" x2="{label_w}" y1="0" y2="{height}" class="axis"/></svg>')
    return "".join(parts)


def histogram(name: str, title: str, edges: Sequence[float], counts: Sequence[int], series: str) -> str:
    """A small vertical histogram of one series: one slot per bin between `edges`, scaled to the tallest bin."""
    width, height, left, right, top, bottom = 290, 150, 38, 16, 10, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    base = top + plot_h
    peak = max([as_int(c) for c in counts] + [1])
    slot = plot_w / max(len(counts), 1)
    colour = COLOURS.get(series, NEUTRAL)
    parts = [
        f'<figure class="small"><svg class="chart hist" data-chart="{esc(name)}" role="img" '
        f'aria-labelledby="{esc(name)}-title" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg"><title id="{esc(name)}-title">{esc(title)}</title>',
    ]
    for i, raw in enumerate(counts):
        count = as_int(raw)
        if count <= 0:
            continue
        h = max(count / peak * plot_h, 1.5)
        low = fmt_num(edges[i]) if i < len(edges) else "?"
        high = fmt_num(edges[i + 1]) if i + 1 < len(edges) else "…"
        parts.append(
            f'<rect class="bar s-{esc(series)}" x="{left + i * slot + 0.5:.1f}" y="{base - h:.1f}" '
            f'width="{max(slot - 1, 0.5):.1f}" height="{h:.1f}" fill="{colour}">'
            f"<title>{low}–{high}: {fmt_num(count)} rows</title></rect>"
        )
    parts.append(f'<line x1="{left}" x2="{width - right}" y1="{base}" y2="{base}" class="axis"/>')
    parts.append(f'<text x="{left - 6}" y="{top}" dy="0.7em" text-anchor="end" class="tick">{fmt_num(peak)}</text>')
    parts.append(f'<text x="{left - 6}" y="{base}" text-anchor="end" class="tick">0</text>')
    step = -(-len(edges) // 9) if edges else 1  # at most ~9 labels under the axis
    for index in sorted({*range(0, len(edges), step), len(edges) - 1} if edges else ()):
        x = left + index * slot
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}" class="axis"/>'
            f'<text x="{x:.1f}" y="{base + 16}" text-anchor="middle" class="tick">{compact(edges[index])}</text>'
        )
    parts.append(f"</svg><figcaption>{esc(title)}</figcaption></figure>")
    return "".join(parts)


def line_chart(
    name: str,
    title: str,
    series: Sequence[tuple[str, Sequence[tuple[float, float]]]],
    *,
    marks: Sequence[tuple[float, str]] = (),
    x_label: str = "",
    colours: Mapping[str, str] | None = None,
    y_range: tuple[float | None, float | None] = (None, None),
    x_range: tuple[float | None, float | None] = (None, None),
) -> str:
    """Lines over a shared numeric x axis, one per (series, points), with a key; `marks` are labelled rules.

    `colours` names a colour per series where COLOURS has none (e.g. one per release); `y_range`
    fixes either end of the y axis (0 and 1 for a rate), `x_range` of the x axis (a whole time
    span, however little of it has points). Points whose y is not finite are left out.
    Colours and strokes are attributes as well as classes, so the SVG also reads right as a file of
    its own, outside a page with `CHART_CSS`.
    """
    width, height, left, right, top, bottom = 760, 300, 56, 16, 26, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    clean = [(s, [(float(x), float(y)) for x, y in pts if math.isfinite(y)]) for s, pts in series]
    xs = [x for _, pts in clean for x, _ in pts] + [x for x, _ in marks]
    ys = [y for _, pts in clean for _, y in pts]
    x_lo, x_hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    y_lo, y_hi = (min(ys), max(ys)) if ys else (0.0, 1.0)
    fixed_lo, fixed_hi = y_range
    if fixed_lo is not None or fixed_hi is not None:
        y_lo = min(y_lo, fixed_lo) if fixed_lo is not None else y_lo
        y_hi = max(y_hi, fixed_hi) if fixed_hi is not None else y_hi
    if x_range[0] is not None:
        x_lo = min(x_lo, x_range[0]) if xs else x_range[0]
    if x_range[1] is not None:
        x_hi = max(x_hi, x_range[1]) if xs else x_range[1]
    x_hi, y_hi = max(x_hi, x_lo + 1e-9), max(y_hi, y_lo + 1e-9)
    pad = (y_hi - y_lo) * 0.05
    y_lo, y_hi = y_lo - pad, y_hi + pad
    base = top + plot_h

    def px(x: float) -> float:
        return left + (x - x_lo) / (x_hi - x_lo) * plot_w

    def py(y: float) -> float:
        return base - (y - y_lo) / (y_hi - y_lo) * plot_h

    axis = 'class="axis" stroke="#8c959f"'
    tick = 'class="tick" fill="#57606a" font-size="11"'
    parts = [
        f'<svg class="chart line" data-chart="{esc(name)}" role="img" aria-labelledby="{esc(name)}-title" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" font-family="system-ui,sans-serif" '
        f'font-size="12" xmlns="http://www.w3.org/2000/svg"><title id="{esc(name)}-title">{esc(title)}</title>',
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{base}" {axis}/>',
        f'<line x1="{left}" x2="{width - right}" y1="{base}" y2="{base}" {axis}/>',
    ]
    for i in range(5):
        value = y_lo + (y_hi - y_lo) * i / 4
        parts.append(
            f'<text x="{left - 6}" y="{py(value):.1f}" dy="0.35em" text-anchor="end" {tick}>{value:.3g}</text>'
        )
    for value in _nice_ticks(x_lo, x_hi):
        x = px(value)
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{base}" y2="{base + 4}" {axis}/>'
            f'<text x="{x:.1f}" y="{base + 16}" text-anchor="middle" {tick}>{compact(value)}</text>'
        )
    if x_label:
        parts.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle" {tick}>{esc(x_label)}</text>'
        )
    for x_value, label in marks:
        x = px(x_value)
        parts.append(
            f'<line class="mark" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{base}" stroke="#57606a" '
            f'stroke-dasharray="4 3"/><text x="{x + 4:.1f}" y="{top + 10}" {tick}>{esc(label)}</text>'
        )
    key_x = float(width - right)
    for s, pts in reversed(clean):
        colour = (colours or {}).get(s) or COLOURS.get(s, NEUTRAL)
        key_x -= 14 + 7 * len(s)
        parts.append(
            f'<line x1="{key_x:.1f}" x2="{key_x + 12:.1f}" y1="{top - 14}" y2="{top - 14}" stroke="{colour}" '
            f'stroke-width="3"/><text x="{key_x + 16:.1f}" y="{top - 14}" dy="0.35em" {tick}>{esc(s)}</text>'
        )
        if not pts:
            continue
        line = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        parts.append(
            f'<polyline class="s-{esc(s)}" points="{line}" fill="none" stroke="{colour}" stroke-width="1.5">'
            f"<title>{esc(s)}</title></polyline>"
        )
        if len(pts) <= 60:  # sparse series (validation) show their points
            parts.extend(
                f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="2.5" fill="{colour}"><title>{esc(s)} at '
                f"{fmt_num(x)}: {y:.4g}</title></circle>"
                for x, y in pts
            )
    parts.append("</svg>")
    return "".join(parts)


def _nice_ticks(low: float, high: float, target: int = 6) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten apart) from `low` to `high`."""
    raw = (high - low) / target
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    step = next((m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw), 10 * magnitude)
    first = math.ceil(low / step) * step
    count = int((high - first) / step + 1e-9) + 1
    return [first + i * step for i in range(max(count, 0))]


def figure(chart: str, legend: Sequence[str]) -> str:
    """A full-width figure around `chart`, with a colour key for the `legend` series (none when empty)."""
    keys = "".join(
        f'<li><span class="swatch" style="background:{COLOURS.get(s, NEUTRAL)}"></span>{esc(s)}</li>' for s in legend
    )
    return (
        f'<figure class="wide">{chart}'
        + (f'<figcaption><ul class="legend">{keys}</ul></figcaption>' if keys else "")
        + "</figure>"
    )


# ----------------------------------------------------------------------------- tables


def table(headers: Sequence[str], rows: Sequence[str], *, numeric: Sequence[int] = (), cls: str = "") -> str:
    """A table with column headers; the `numeric` columns are right-aligned."""
    num = ' class="num"'
    head = "".join(f'<th scope="col"{num if i in numeric else ""}>{esc(h)}</th>' for i, h in enumerate(headers))
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def num_cell(value: Any) -> str:
    """A right-aligned table cell holding `value` as `fmt_num` writes it."""
    return f'<td class="num">{fmt_num(value)}</td>'


# ----------------------------------------------------------------------------- text and numbers


def esc(value: Any) -> str:
    """Any value as text safe inside an element or a quoted attribute: report strings are user text."""
    return html.escape(str(value), quote=True)


def fmt_num(value: Any) -> str:
    """A count for display: thousands separators, two decimals for a fraction, "—" for None; text escaped."""
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if value.is_integer() else f"{value:,.2f}"
    return esc(value)


def as_int(value: Any) -> int:
    """A report number as an int for arithmetic; anything else (missing, text, a bool) counts as 0."""
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def compact(value: Any) -> str:
    """A short axis label: 1000 and up in thousands ("1.2k"), smaller numbers as `fmt_num` writes them."""
    if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) >= 1000:
        return f"{value / 1000:.3g}k"
    return fmt_num(value)


def text_width(text: str, size: float = 12.0) -> int:
    """Pixels `text` takes at most in the charts' sans-serif font of `size` px (0.6 em a character:
    wider than the average, so a reserved column holds the text without measuring it)."""
    return math.ceil(len(text) * size * 0.6)


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, the last one an ellipsis when it was cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


# The rules the charts and legends need; a page includes it in its <style>.
CHART_CSS = """\
figure{margin:12px 0}
figure.wide svg{max-width:100%;height:auto}
svg.chart text{font:12px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:var(--ink)}
svg.chart .value,svg.chart .tick{fill:var(--muted);font-variant-numeric:tabular-nums}
svg.chart .tick{font-size:11px}
svg.chart .axis{stroke:#8c959f;stroke-width:1}
.legend{list-style:none;margin:4px 0 0;padding:0;display:flex;gap:16px;font-size:13px;color:var(--muted)}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:6px;vertical-align:-1px}
.multiples{display:flex;flex-wrap:wrap;gap:8px 20px}
figure.small{margin:4px 0}figure.small figcaption{font-size:13px;color:var(--muted);text-align:center}
"""
