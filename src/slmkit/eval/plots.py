"""The eval report's figures, as inline SVG (slmkit.charts): no script, no network, deterministic.

- base vs adapter vs production, side by side, on the headline metrics;
- F1 per class of the label field, worst class first; a side that scores 0 on every class (an
  untuned base model) is left out and the page says so once;
- the most-confused label pairs of the adapter, with counts and an example input each;
- the confusion matrix of the adapter as a heat map (rows gold, columns predicted);
- the adapter's confidence, as a histogram.

Every class name is written whole: 77 intents that differ only at their ends must stay readable.
"""

from __future__ import annotations

import math
from typing import Any

from slmkit.charts import bar_chart, esc, figure, histogram, text_width

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
    parts.extend(per_class_html(report))
    confusion = report.get("confusion", {}).get("adapter")
    if confusion:
        parts.extend(confused_pairs_html(confusion, report.get("predictions", []), report.get("label_field")))
        parts.append(heatmap(confusion))
    answers = [p.get("adapter", {}) for p in report.get("predictions", [])]
    confidences = [a["confidence"] for a in answers if a.get("confidence") is not None]
    if confidences:
        edges = [i / 10 for i in range(11)]
        counts = [0] * 10
        for value in confidences:
            counts[min(int(value * 10), 9)] += 1
        scored = any("label_alternatives" in a for a in answers)
        what = "its label's probability among the allowed labels" if scored else "probability of its least likely token"
        parts.append(histogram("confidence", f"Adapter confidence: {what}", edges, counts, "adapter"))
    return parts


def per_class_html(report: dict[str, Any]) -> list[str]:
    """F1 per class, worst first (by the adapter's F1); sides that score 0 on every class left out, once noted."""
    per_class = {side: _per_class_f1(table) for side, table in report.get("confusion", {}).items() if table}
    if not per_class:
        return []
    zero = [side for side, scores in per_class.items() if not any(scores.values())]
    shown = {side: scores for side, scores in per_class.items() if side not in zero}
    parts = []
    if shown:
        lead = "adapter" if "adapter" in shown else next(iter(shown))
        labels = sorted(shown[lead], key=lambda label: (shown[lead][label], label))
        rows = [
            (label if len(shown) == 1 else f"{label} · {side}", [(side, round(1000 * f1))], f"{f1:.3f}")
            for label in labels
            for side, scores in shown.items()
            if (f1 := scores.get(label)) is not None
        ]
        title = f"F1 per class of the label field, worst first ({len(labels)} classes)"
        parts.append(figure(bar_chart("per-class-f1", title, rows, top=1000), list(shown)))
    if zero:
        parts.append(
            f'<p class="note">Left out of the per-class figure: {esc(", ".join(zero))}, which scored F1 0 on every '
            "class.</p>"
        )
    return parts


MOST_CONFUSED = 10


def confused_pairs_html(
    table: dict[str, dict[str, int]], predictions: list[dict[str, Any]], label_field: str | None
) -> list[str]:
    """The adapter's most frequent (gold, predicted) mistakes, each with its count and an example input."""
    pairs = sorted(
        (
            (count, gold, predicted)
            for gold, row in table.items()
            for predicted, count in row.items()
            if predicted != gold
        ),
        key=lambda item: (-item[0], item[1], item[2]),
    )[:MOST_CONFUSED]
    if not pairs:
        return []
    rows = []
    for count, gold, predicted in pairs:
        example = next((p for p in predictions if _labels_of(p, label_field) == (gold, predicted)), None)
        shown = esc(str(example["input"])[:200]) if example else ""
        rows.append(
            f"<tr><td class=l>{esc(gold)}</td><td class=l>{esc(predicted)}</td><td>{count}</td>"
            f"<td class=l>{shown}</td></tr>"
        )
    return [
        f'<h3>Most confused labels (adapter): the {len(pairs)} most frequent mistakes</h3><table class="confused">'
        "<tr><th class=l>gold</th><th class=l>answered</th><th>items</th><th class=l>for example</th></tr>"
        + "".join(rows)
        + "</table>"
    ]


def _labels_of(prediction: dict[str, Any], label_field: str | None) -> tuple[str, str] | None:
    """(gold label, the adapter's label or '(invalid)') of a reported prediction, named as the confusion table does."""
    import json

    if label_field is None or not isinstance(prediction.get("gold"), dict):
        return None
    gold = str(prediction["gold"].get(label_field))
    try:
        answer = json.loads(prediction.get("adapter", {}).get("text", ""))
    except (ValueError, TypeError):
        return gold, "(invalid)"
    got = answer.get(label_field) if isinstance(answer, dict) else None
    return gold, str(got) if got is not None else "(invalid)"


def heatmap(table: dict[str, dict[str, int]]) -> str:
    """Rows gold, columns predicted; each cell shaded by its share of its row. Names whole, margins sized to them."""
    gold = list(table)
    predicted = list(dict.fromkeys([*gold, *(p for row in table.values() for p in row)]))
    cell = 34 if len(predicted) <= 20 else 16
    longest = text_width(max(predicted + gold, key=len))
    slant = math.ceil(text_width(max(predicted, key=len)) * 0.72)  # a -45° label's height and width
    left, top = longest + 16, slant + 16
    width, height = left + cell * len(predicted) + slant + 10, top + cell * len(gold) + 10
    parts = [
        '<figure class="wide"><svg class="chart heat" data-chart="confusion" role="img" style="font-size:12px" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">'
        "<title>Confusion matrix (adapter)</title>"
    ]
    for j, label in enumerate(predicted):
        x = left + j * cell + cell / 2
        parts.append(
            f'<text x="{x:.1f}" y="{top - 6}" transform="rotate(-45 {x:.1f} {top - 6})" class="tick">'
            f"{esc(label)}</text>"
        )
    for i, label in enumerate(gold):
        row = table[label]
        total = sum(row.values()) or 1
        y = top + i * cell
        parts.append(
            f'<text x="{left - 6}" y="{y + cell / 2:.1f}" dy="0.35em" text-anchor="end" class="label">'
            f"{esc(label)}</text>"
        )
        for j, column in enumerate(predicted):
            count = row.get(column, 0)
            colour = "#009E73" if column == label else "#D55E00"
            parts.append(
                f'<rect x="{left + j * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}" fill="{colour}" '
                f'fill-opacity="{0.08 + 0.92 * count / total:.2f}">'
                f"<title>gold {esc(label)}, predicted {esc(column)}: {count}</title></rect>"
            )
            if count and cell >= 30:
                parts.append(
                    f'<text x="{left + j * cell + cell / 2 - 1:.1f}" y="{y + cell / 2:.1f}" dy="0.35em" '
                    f'text-anchor="middle" class="value">{count}</text>'
                )
    parts.append(
        "</svg><figcaption>Confusion matrix of the adapter: rows gold, columns predicted; green the "
        "diagonal, each cell shaded by its share of the row"
        + ("" if cell >= 30 else " (counts on hover)")
        + "</figcaption></figure>"
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
