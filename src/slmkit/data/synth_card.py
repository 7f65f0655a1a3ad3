"""The data card's "Synthetic rows" section: what a teacher added, per label, and what the checks dropped.

The card's other sections describe the real rows (their accounting is unchanged by synthesis);
this one says how many synthetic rows train beside them, per label, the share of real rows
against its floor, which teacher wrote them, and every reason a candidate was dropped.
"""

from __future__ import annotations

import json
from typing import Any

from slmkit.charts import as_int, bar_chart, clip, esc, figure, fmt_num, num_cell, table

CLIP_CHARS = 160


def synthetic_body(section: Any) -> str:
    """The section's HTML body; a version without synthetic rows says so."""
    if not isinstance(section, dict):
        return '<p class="not-run"><strong>Not run</strong>: this version holds real rows only (no `slmkit synth`).</p>'
    accepted, candidates = as_int(section.get("accepted")), as_int(section.get("candidates"))
    share, floor = section.get("real_share", 1.0), section.get("min_real_share", 0.0)
    teacher = section.get("teacher") or {}
    cost = section.get("teacher_cost") or {}
    lead = (
        f"<p>{fmt_num(accepted)} synthetic rows train beside {fmt_num(section.get('real_rows'))} real ones "
        f"(real rows are {share:.0%} of training; the floor is {floor:.0%}). They were written by "
        f"<code>{esc(teacher.get('model', '?'))}</code> from the seeds of <code>{esc(section.get('parent', '?'))}"
        f"</code>: {fmt_num(candidates)} candidates, {fmt_num(section.get('rejected'))} dropped with their reason "
        f"in <code>synthetic_rejects.jsonl</code>. Validation and gold hold real rows only. The teacher's "
        f"{fmt_num(cost.get('replies'))} replies cost {fmt_num(cost.get('prompt_tokens'))} prompt and "
        f"{fmt_num(cost.get('completion_tokens'))} completion tokens.</p>"
    )
    by_label = section.get("by_label") or {}
    chart_rows = [
        (
            str(label),
            [("real", as_int(c.get("real"))), ("synthetic", as_int(c.get("synthetic")))],
            f"{fmt_num(c.get('real'))} + {fmt_num(c.get('synthetic'))}",
        )
        for label, c in by_label.items()
    ]
    label_rows = [
        f'<tr><th scope="row">{esc(label)}</th>{num_cell(c.get("real"))}{num_cell(c.get("synthetic"))}'
        f"{num_cell(as_int(c.get('real')) + as_int(c.get('synthetic')))}</tr>"
        for label, c in by_label.items()
    ]
    body = lead
    if label_rows:
        chart = bar_chart("synthetic-labels", "Training rows per label: real and synthetic", chart_rows)
        body += "<h3>Training rows per label</h3>" + figure(chart, ["real", "synthetic"])
        body += table(["Label", "Real", "Synthetic", "Total"], label_rows, numeric=(1, 2, 3))
    kinds = section.get("planned_by_kind") or {}
    kept = section.get("accepted_by_kind") or {}
    kind_rows = [
        f'<tr><th scope="row">{esc(kind)}</th>{num_cell(n)}{num_cell(kept.get(kind, 0))}</tr>'
        for kind, n in kinds.items()
    ]
    body += "<h3>Requests by kind</h3>" + table(["Kind", "Planned", "Accepted"], kind_rows, numeric=(1, 2))
    reasons = section.get("rejected_by_reason") or {}
    meanings = section.get("reject_kinds") or {}
    if reasons:
        rows = [
            f'<tr><th scope="row">{esc(kind)}</th>{num_cell(n)}<td>{esc(meanings.get(kind, "—"))}</td></tr>'
            for kind, n in reasons.items()
        ]
        body += "<h3>Dropped candidates</h3>" + table(["Reason", "Rows", "Meaning"], rows, numeric=(1,), cls="full")
    examples = section.get("examples") or {}
    for title, shown in (
        ("Accepted (first rows)", examples.get("accepted")),
        ("Dropped (first rows)", examples.get("rejected")),
    ):
        if shown:
            body += f"<h3>{title}</h3>" + table(["Kind", "Row"], [_example(r) for r in shown], cls="full")
    return body


def _example(row: dict[str, Any]) -> str:
    seeds = ", ".join(row.get("seeds") or []) or "—"
    text = row.get("input") if "input" in row else row.get("reply")
    shown = esc(clip("" if text is None else str(text), CLIP_CHARS))
    answer = (
        f'<div class="snippet json">{esc(json.dumps(row["output"], ensure_ascii=False))}</div>'
        if "output" in row
        else ""
    )
    verdict = (
        f"{esc(row['reject'])}: {esc(clip(str(row.get('reason', '')), CLIP_CHARS))}" if row.get("reject") else "kept"
    )
    return (
        f'<tr><th scope="row">{esc(row.get("kind", "?"))}</th><td><div class="ref">{esc(row.get("id"))} from '
        f'{esc(seeds)} · {verdict}</div><div class="snippet">{shown}</div>{answer}</td></tr>'
    )
