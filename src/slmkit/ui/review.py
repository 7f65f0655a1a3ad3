"""The review page: a release's review queue, each item with its verdict, and the sign-off.

A reviewer (a key with the reviewer role) accepts, corrects or rejects each item; the
correction form has one input per property of the output schema and is checked against the
schema by `slmkit.eval.verdicts.answer_item` before anything is recorded.
"""

from __future__ import annotations

import json
from typing import Any

from slmkit.charts import esc
from slmkit.eval.review import ReviewItem
from slmkit.eval.verdicts import FormField, ReviewQueue, form_fields, review_queue
from slmkit.registry import Evidence, ReviewVerdict
from slmkit.ui.context import Context
from slmkit.ui.layout import flash, page, post_form, status


def review(ctx: Context, ref: str | None) -> str:
    queue = review_queue(ctx.config, ctx.registry, ref)
    rel = queue.release
    can = ctx.visitor.can("reviewer")
    answered = len(queue.items) - len(queue.unanswered)
    counts: dict[str, int] = {}
    for verdict in queue.verdicts.values():
        counts[verdict.verdict] = counts.get(verdict.verdict, 0) + 1
    evidence = rel.latest_evidence("review")
    parts = [
        flash(ctx.done),
        "" if ctx.error_item in {i.id for i in queue.items} else flash(ctx.error, "error"),
        _release_picker(ctx, rel.version),
        "<p class=muted>Review of the gold items behind a release. Captured production traffic has its own queue: "
        '<a href="/review/traffic">production review</a>.</p>',
        f'<p><b>{len(queue.items)}</b> items to review for <a href="/releases/{rel.version}">{esc(rel.ref)}</a>'
        f" (eval report <code>{esc(queue.report_digest[:12])}</code>): <b>{answered}</b> answered"
        + "".join(f", {n} {esc(v)}" for v, n in sorted(counts.items()))
        + f". Signed off: {_signed(evidence)}</p>",
    ]
    if can:
        ready = not queue.unanswered
        parts.append(
            post_form(
                f"/actions/review/{rel.version}/signoff",
                ctx.visitor,
                f"<b>Sign off the review of {esc(rel.ref)}</b> "
                + (
                    "(every item has a verdict) " if ready else f"({len(queue.unanswered)} items still need a verdict) "
                ),
                "sign off",
                style="primary",
            )
        )
    elif ctx.visitor.key is None:
        parts.append('<p class=muted>Read-only: <a href="/login">log in</a> with a reviewer key to answer items.</p>')
    else:
        parts.append(f"<p class=muted>Key {esc(ctx.visitor.key.name)} does not hold the reviewer role: read-only.</p>")
    for item in queue.items:
        parts.append(_item(ctx, queue, item, can, ctx.error if ctx.error_item == item.id else None))
    return page(f"Review: {rel.ref}", "".join(parts), ctx.visitor, active="/review")


def _release_picker(ctx: Context, current: int) -> str:
    versions = sorted((r.version for r in ctx.registry.list_releases(ctx.config.task.name)), reverse=True)
    options = "".join(f'<option value="{v}"{" selected" if v == current else ""}>v{v}</option>' for v in versions)
    return (
        f'<form method="get" action="/review" class="inline">release <select name="release" aria-label="release">'
        f"{options}</select> <button type=submit>show</button></form>"
    )


def _item(ctx: Context, queue: ReviewQueue, item: ReviewItem, can: bool, error: str | None) -> str:
    current = queue.verdicts.get(item.id)
    conf = "–" if item.confidence is None else f"{item.confidence:.3f}"
    head = (
        f'<div class="item" id="item-{esc(item.id)}" data-item="{esc(item.id)}"><b>{esc(item.id)}</b> · '
        f"{esc(', '.join(item.reasons))} · confidence {conf} · verdict: {_verdict(current)}"
    )
    cols = (
        '<div class="cols">'
        f"<div><div class=muted>input</div><pre>{esc(item.input)}</pre></div>"
        f"<div><div class=muted>gold</div><pre>{esc(item.gold)}</pre></div>"
        f"<div><div class=muted>answer of {esc(queue.release.ref)}</div><pre>{esc(item.answer)}</pre></div></div>"
    )
    forms = ""
    if can:
        target = f"/actions/review/{queue.release.version}/verdict"
        note = f'<input type="hidden" name="item" value="{esc(item.id)}">' + (
            '<input type="text" name="note" placeholder="note (optional)" aria-label="note">'
        )
        forms = (
            flash(error, "error")
            + post_form(
                target,
                ctx.visitor,
                '<input type="hidden" name="verdict" value="accept">' + note,
                "accept",
                cls="inline",
            )
            + " "
            + post_form(
                target,
                ctx.visitor,
                '<input type="hidden" name="verdict" value="reject">' + note,
                "reject",
                cls="inline",
            )
            + post_form(
                target,
                ctx.visitor,
                '<input type="hidden" name="verdict" value="correct"><div class=muted>or correct the answer:</div>'
                f'<div class="fields">{fields_html(form_fields(queue.task), _start(item, current))}</div>{note} ',
                "correct",
            )
        )
    return head + cols + forms + "</div>"


def _verdict(current: ReviewVerdict | None) -> str:
    if current is None:
        return '<span class="na">none yet</span>'
    cls = {"accept": "ok", "correct": "warn", "reject": "bad"}[current.verdict]
    fixed = f" → <code>{esc(json.dumps(current.correction, ensure_ascii=False))}</code>" if current.correction else ""
    note = f" ({esc(current.note)})" if current.note else ""
    shown = f'<span class="{cls}" data-verdict="{esc(current.verdict)}">{esc(current.verdict)}</span>'
    return f"{shown}{fixed}{note} by {esc(current.created_by)}"


def _signed(evidence: Evidence | None) -> str:
    return f"{status(evidence.status)} {esc(evidence.detail.get('summary', ''))}" if evidence else "not yet"


def _start(item: ReviewItem, current: ReviewVerdict | None) -> dict[str, Any]:
    """What the correction form shows first: the recorded correction, else the model's answer, else gold."""
    if current is not None and isinstance(current.correction, dict):
        return current.correction
    for text in (item.answer, item.gold):
        try:
            value = json.loads(text)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return {}


def fields_html(fields: list[FormField], start: dict[str, Any]) -> str:
    """The correction form's inputs, one per property of the output schema, filled from `start`."""
    parts = []
    for field in fields:
        name = f"field.{field.name}"
        value = start.get(field.name)
        if field.kind == "choice":
            options = "".join(
                f'<option value="{esc(json.dumps(c))}"{" selected" if c == value else ""}>'
                f"{esc('(none)' if c is None else c)}</option>"
                for c in field.choices
            )
            control = f'<select name="{esc(name)}">{options}</select>'
        else:
            shown = "" if value is None else value if field.kind == "text" else json.dumps(value)
            control = f'<input type="text" name="{esc(name)}" value="{esc(shown)}">'
        hint = " (empty: none)" if field.nullable and field.kind != "choice" else ""
        parts.append(f"<label>{esc(field.name)}{hint}{control}</label>")
    return "".join(parts)
