"""The eval report's figures, as inline SVG (slmkit.charts): no script, no network, deterministic.

- base vs adapter vs production, side by side, on the headline metrics;
- F1 per class of the label field, per side;
- the confusion matrix of the adapter as a heat map (rows gold, columns predicted);
- the adapter's confidence (probability of its least likely answer token), as a histogram.
"""

from __future__ import annotations

from typing import Any

from slmkit.charts import bar_chart, esc, figure, histogram

HEADLINE = ("schema_validity", "exact_match", "label_accuracy", "label_macro_f1", "field_f1")


def plots_html(report: dict[str, Any]) -> list[str]:
    parts = ["<h2>Figures</h2>"]
    sides = _side_scores(report)
    if sides:
        series = {side: side.split(" (")[0] for side in sides}  # "production (name@1)" is coloured as production
        rows = [
            (f"{metric} · {side}", [(series[side], round(1000 * value))], f"{value:.3f}")
            for metric in HEADLINE
            for side, scores in sides.items()
            if (value := scores.get(metric)) is not None
        ]
        chart = bar_chart("sides", "Headline metrics by side", rows, top=1000)
        parts.append(figure(chart, list(dict.fromkeys(series.values()))))
    per_class = {side: _per_class_f1(table) for side, table in report.get("confusion", {}).items()}
    if per_class:
        rows = [
            (f"{label} · {side}", [(side, round(1000 * f1))], f"{f1:.3f}")
            for label in next(iter(per_class.values()))
            for side, scores in per_class.items()
            if (f1 := scores.get(label)) is not None
        ]
        chart = bar_chart("per-class-f1", "F1 per class of the label field", rows, top=1000)
        parts.append(figure(chart, list(per_class)))
    if "adapter" in report.get("confusion", {}):
        parts.append(heatmap(report["confusion"]["adapter"]))
    answers = [p.get("adapter", {}) for p in report.get("predictions", [])]
    confidences = [a["confidence"] for a in answers if a.get("confidence") is not None]
    if confidences:
        edges = [i / 10 for i in range(11)]
        counts = [0] * 10
        for value in confidences:
            counts[min(int(value * 10), 9)] += 1
        title = "Adapter confidence: probability of its least likely answer token"
        parts.append(histogram("confidence", title, edges, counts, "adapter"))
    return parts


def heatmap(table: dict[str, dict[str, int]]) -> str:
    """Rows gold, columns predicted; each cell shaded by its share of its row."""
    gold = list(table)
    predicted = list(dict.fromkeys([*gold, *(p for row in table.values() for p in row)]))
    cell, left, top = 34, 130, 110
    width, height = left + cell * len(predicted) + 80, top + cell * len(gold) + 10
    parts = [
        '<figure class="wide"><svg class="chart heat" data-chart="confusion" role="img" style="font-size:12px" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        "<title>Confusion matrix (adapter)</title>"
    ]
    for j, label in enumerate(predicted):
        x = left + j * cell + cell / 2
        parts.append(
            f'<text x="{x:.1f}" y="{top - 6}" transform="rotate(-45 {x:.1f} {top - 6})" class="tick">'
            f"{esc(label[:18])}</text>"
        )
    for i, label in enumerate(gold):
        row = table[label]
        total = sum(row.values()) or 1
        y = top + i * cell
        parts.append(
            f'<text x="{left - 6}" y="{y + cell / 2:.1f}" dy="0.35em" text-anchor="end" class="label">'
            f"{esc(label[:18])}</text>"
        )
        for j, column in enumerate(predicted):
            count = row.get(column, 0)
            colour = "#009E73" if column == label else "#D55E00"
            parts.append(
                f'<rect x="{left + j * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{colour}" '
                f'fill-opacity="{0.08 + 0.92 * count / total:.2f}">'
                f"<title>gold {esc(label)}, predicted {esc(column)}: {count}</title></rect>"
            )
            if count:
                parts.append(
                    f'<text x="{left + j * cell + cell / 2 - 1:.1f}" y="{y + cell / 2:.1f}" dy="0.35em" '
                    f'text-anchor="middle" class="value">{count}</text>'
                )
    parts.append(
        "</svg><figcaption>Confusion matrix of the adapter: rows gold, columns predicted; green the "
        "diagonal, each cell shaded by its share of the row</figcaption></figure>"
    )
    return "".join(parts)


def _side_scores(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each side's headline scores, and production's (from the regression section) beside them."""
    sides = {
        side: {m: metrics[m]["value"] for m in HEADLINE if metrics.get(m, {}).get("value") is not None}
        for side, metrics in report.get("metrics", {}).items()
    }
    for alias, regression in report.get("regression", {}).items():
        scores = {
            m: entry["release"]
            for m, entry in (regression.get("metrics") or {}).items()
            if m in HEADLINE and entry.get("release") is not None
        }
        if scores:
            sides[f"{alias} ({regression.get('against')})"] = scores
    return {side: scores for side, scores in sides.items() if scores}


def _per_class_f1(table: dict[str, dict[str, int]]) -> dict[str, float]:
    labels = list(table)
    scores = {}
    for label in labels:
        tp = table[label].get(label, 0)
        fn = sum(table[label].values()) - tp
        fp = sum(row.get(label, 0) for gold, row in table.items() if gold != label)
        scores[label] = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
    return scores
