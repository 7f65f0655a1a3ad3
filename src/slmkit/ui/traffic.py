"""The production review page: the open items of the production review queue, answered one at a time.

A reviewer (a key with the reviewer role) accepts, corrects or rejects the answer a release gave to
a captured request; `slmkit.monitor.review_import.answer_item` checks and records it, as
`slmkit review answer` does, and rewrites the reviewed-items data source. The page also shows the
production accuracy the reviewed random share estimates. Drawing the queue stays a command
(`slmkit review queue --traffic`): it is a decision about what people spend their time on.
"""

from __future__ import annotations

import json
from typing import Any

from slmkit.charts import esc
from slmkit.eval.verdicts import form_fields
from slmkit.monitor.queue import QueueItem, estimates, queue_items
from slmkit.monitor.requests import RequestLog
from slmkit.monitor.review_export import STRATUM_WHY
from slmkit.task import Task
from slmkit.ui.context import Context
from slmkit.ui.layout import flash, page, post_form
from slmkit.ui.review import fields_html

SHOWN = 50  # open items on one page, oldest draw first


def traffic(ctx: Context) -> str:
    with RequestLog(ctx.config.state_dir / "requests.db") as log:
        items = queue_items(log)
    task = Task.from_config(ctx.config)
    open_items = [i for i in items if i.current is None]
    can = ctx.visitor.can("reviewer")
    parts = [
        flash(ctx.done),
        "" if ctx.error_item in {i.id for i in open_items} else flash(ctx.error, "error"),
        f"<p><b>{len(open_items)}</b> open items in the production review queue, <b>{len(items) - len(open_items)}</b>"
        " answered. Accepted and corrected answers become training rows of <code>.slmkit/reviewed.jsonl</code>; "
        "new items come from <code>slmkit review queue --traffic</code>.</p>",
    ]
    for estimate in estimates(items, task.cfg.label_field):
        parts.append(f'<p class="estimate">Production accuracy, {esc(estimate.line())}</p>')
    if not can:
        parts.append('<p class=muted>Read-only: <a href="/login">log in</a> with a reviewer key to answer items.</p>')
    for item in open_items[:SHOWN]:
        parts.append(_item(ctx, task, item, can, ctx.error if ctx.error_item == item.id else None))
    if len(open_items) > SHOWN:
        parts.append(f"<p class=muted>{len(open_items) - SHOWN} more after these are answered.</p>")
    return page("Production review", "".join(parts), ctx.visitor, active="/review")


def _item(ctx: Context, task: Task, item: QueueItem, can: bool, error: str | None) -> str:
    conf = "–" if item.confidence is None else f"{item.confidence:.3f}"
    head = (
        f'<div class="item" id="item-{esc(item.id)}" data-item="{esc(item.id)}"><b>{esc(item.id)}</b> · '
        f"{esc(STRATUM_WHY[item.stratum])} · answered by {esc(item.release or '?')} · confidence {conf}"
    )
    cols = (
        '<div class="cols">'
        f"<div><div class=muted>input (PII replaced at capture)</div><pre>{esc(item.input_text())}</pre></div>"
        f"<div><div class=muted>answer</div><pre>{esc(item.answer or '')}</pre></div></div>"
    )
    if not can:
        return head + cols + "</div>"
    target = "/actions/review/traffic/answer"
    note = f'<input type="hidden" name="item" value="{esc(item.id)}">' + (
        '<input type="text" name="note" placeholder="note (optional)" aria-label="note">'
    )

    def button(verdict: str) -> str:
        inner = f'<input type="hidden" name="verdict" value="{verdict}">' + note
        return post_form(target, ctx.visitor, inner, verdict, cls="inline")

    correct = post_form(
        target,
        ctx.visitor,
        '<input type="hidden" name="verdict" value="correct"><div class=muted>or correct the answer:</div>'
        f'<div class="fields">{fields_html(form_fields(task), _start(item))}</div>{note} ',
        "correct",
    )
    return head + cols + flash(error, "error") + button("accept") + " " + button("reject") + correct + "</div>"


def _start(item: QueueItem) -> dict[str, Any]:
    try:
        value = json.loads(item.answer or "")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
