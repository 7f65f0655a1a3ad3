"""Release history with aliases, one release in full, two side by side, the audit log; promote and roll back."""

from __future__ import annotations

from slmkit.charts import esc
from slmkit.registry.checklist import release_checklist
from slmkit.registry.describe import AUDIT_ACTIONS, audit_detail, diff_lines, release_lines
from slmkit.ui.context import Context
from slmkit.ui.layout import flash, num, page, post_form, pre, status, table
from slmkit.ui.overview import checklist_table

AUDIT_PER_PAGE = 100


def releases(ctx: Context) -> str:
    name, alias = ctx.config.task.name, ctx.config.release.alias
    found = sorted(ctx.registry.list_releases(name), key=lambda r: r.version, reverse=True)
    aliases = ctx.registry.aliases(name)
    can_move = ctx.visitor.can("releaser")
    rows = []
    for rel in found:
        metrics = rel.provenance.get("eval", {}).get("metrics", {}).get("adapter", {})
        review = rel.latest_evidence("review")
        action = ""
        if can_move and aliases.get(alias) != rel.version:
            action = post_form(
                "/actions/promote",
                ctx.visitor,
                f'<input type="hidden" name="version" value="{rel.version}">'
                '<input type="text" name="reason" required placeholder="why" '
                f'aria-label="reason to promote v{rel.version}">',
                f"promote to {alias}",
                cls="inline",
            )
        rows.append(
            [
                f'<a href="/releases/{rel.version}">{esc(rel.ref)}</a>',
                " ".join(f'<span class="pill">{esc(a)}</span>' for a in rel.aliases),
                esc(rel.created_at[:19].replace("T", " ")),
                esc(rel.created_by),
                f'<a href="/datasets/{esc(rel.dataset_version)}">{esc(rel.dataset_version)}</a>',
                num(metrics.get("label_accuracy")),
                num(metrics.get("exact_match")),
                status(review.status) if review else '<span class="na">–</span>',
                esc(rel.note),
                action,
            ]
        )
    body = flash(ctx.done) + flash(ctx.error, "error")
    current = aliases.get(alias)
    if can_move and current is not None:
        parent = next((r.parent_version for r in found if r.version == current), None)
        body += post_form(
            "/actions/rollback",
            ctx.visitor,
            f"<b>Roll back {esc(name)}@{esc(alias)}</b> (now v{current}) to "
            f'<input type="text" name="to" size="4" placeholder="{parent or "-"}" '
            'aria-label="version to roll back to"> '
            '(empty: the previous release) because <input type="text" name="reason" required size="40" '
            'placeholder="why: kept in the audit log" aria-label="reason to roll back"> ',
            "roll back",
            style="danger",
        )
    if len(found) >= 2:
        earlier = "".join(
            f'<option value="{r.version}"{" selected" if r is found[1] else ""}>v{r.version}</option>' for r in found
        )
        later = "".join(f'<option value="{r.version}">v{r.version}</option>' for r in found)
        body += (
            '<form method="get" action="/releases/diff" class="act">Compare '
            f'<select name="a" aria-label="earlier release">{earlier}</select> with '
            f'<select name="b" aria-label="later release">{later}</select> <button type=submit>diff</button></form>'
        )
    body += table(
        ["release", "aliases", "created", "by", "dataset", "label acc.", "exact", "review", "note", ""],
        rows,
        numeric=(5, 6),
    )
    return page("Releases", body, ctx.visitor, active="/releases")


def release(ctx: Context, version: int) -> str:
    rel = ctx.registry.get_release(ctx.config.task.name, version)
    from slmkit.monitor.rules import release_rule_checks

    checklist = release_checklist(
        ctx.registry,
        rel,
        alerts=release_rule_checks(ctx.config, ctx.registry, rel, quick=True),
        blocking=ctx.config.release.blocking,
    )
    links = (
        f'<p><a href="/runs/{esc(rel.run_id)}/eval">eval report</a> · '
        f'<a href="/runs/{esc(rel.run_id)}">training run</a>'
        f' · <a href="/review?release={rel.version}">review queue</a>'
        + (
            f' · <a href="/releases/diff?a={rel.parent_version}&amp;b={rel.version}">'
            f"diff with v{rel.parent_version}</a>"
            if rel.parent_version
            else ""
        )
        + "</p>"
    )
    body = (
        links
        + "<h2>Production checklist</h2>"
        + checklist_table(checklist)
        + "<h2>Record</h2>"
        + pre(release_lines(ctx.registry, rel))
    )
    return page(f"Release {rel.ref}", body, ctx.visitor, active="/releases")


def diff(ctx: Context, a: int, b: int) -> str:
    name = ctx.config.task.name
    first, second = ctx.registry.get_release(name, a), ctx.registry.get_release(name, b)
    return page(
        f"{first.ref} → {second.ref}", pre(diff_lines(ctx.registry, first, second)), ctx.visitor, active="/releases"
    )


def audit(ctx: Context, page_no: int, everything: bool) -> str:
    name = ctx.config.task.name
    actions = None if everything else AUDIT_ACTIONS
    entries = ctx.registry.audit_log(name, limit=AUDIT_PER_PAGE * (page_no + 1) + 1, actions=actions)
    shown = entries[AUDIT_PER_PAGE * page_no : AUDIT_PER_PAGE * (page_no + 1)]
    rows = [[esc(e.ts[:19].replace("T", " ")), esc(e.actor), esc(e.action), esc(audit_detail(e))] for e in shown]
    more = len(entries) > AUDIT_PER_PAGE * (page_no + 1)
    switch = (
        '<a href="/audit">releases and aliases only</a>'
        if everything
        else '<a href="/audit?all=1">everything (datasets, evaluations, verdicts)</a>'
    )
    nav = (
        f'<a href="/audit?page={page_no - 1}{"&amp;all=1" if everything else ""}">&larr; newer</a> ' if page_no else ""
    ) + (f'<a href="/audit?page={page_no + 1}{"&amp;all=1" if everything else ""}">older &rarr;</a>' if more else "")
    body = f'<p>{switch}</p><div class="pager">{nav}</div>' + (
        table(["when (UTC)", "who", "action", "what and why"], rows) if rows else "<p>No audit entries yet.</p>"
    )
    return page("Audit log", body, ctx.visitor, active="/audit")
