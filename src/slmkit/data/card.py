"""The dataset card: report.json rendered as report.html, one self-contained page.

A reviewer (a compliance officer, an ML engineer) reads it to see a dataset without reading
code: where every input row went, what was rejected and why, what PII was found, which
duplicates and conflicting answers were dropped, how long the examples are, which files it came
from. The CSS and the charts (inline SVG, drawn by `slmkit.charts`) are in the page and there is
no JavaScript and no web font, so it opens offline and can be archived with the dataset it
describes. This module owns the card's sections, its checks and its page CSS.

Every string from the report is escaped: inputs are user text and may hold markup. The page has
no timestamp, so the same report gives byte-identical HTML, as a content-hashed artifact needs.
Only `counts` is required; a section whose stage is absent or disabled says "not run".
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slmkit.charts import CHART_CSS, as_int, bar_chart, clip, esc, figure, fmt_num, histogram, num_cell, table
from slmkit.data.rows import REJECT_KINDS
from slmkit.data.synth_card import synthetic_body
from slmkit.errors import StageError

# The builder's stages in the order they run; one missing from report["stages"] did not run.
# The stages `slmkit data build` reports, in order; one missing from a report shows as "not run".
# Copies of gold rows are rejected inside the dedup stages (as gold_leak), not in a stage of their own.
STAGE_ORDER = ("read", "validate", "pii", "token length", "exact dedup", "near dedup", "semantic dedup", "split")
SPLITS = ("train", "validation", "gold")
CLIP_CHARS = 200
MAX_EXAMPLES = 20


def render_card(report: dict[str, Any]) -> str:
    """The data card of one dataset version as a complete HTML document (deterministic, offline)."""
    counts = report.get("counts")
    if not isinstance(counts, dict):
        raise StageError(
            "report.json has no 'counts' section: cannot render the data card",
            hint="rebuild the dataset with `slmkit data build`; its report.json always holds the counts",
        )
    title = f"Data card: {report.get('task', 'dataset')} {report.get('version', '')}".strip()
    sections = [
        _summary(report, counts),
        _flow(report.get("stages")),
        _splits(report, counts),
        _rejects(report, counts),
        _pii(report.get("pii")),
        _duplicates(report.get("duplicates")),
        _conflicts(report.get("conflicts")),
        _lengths(report.get("lengths")),
        _sources(report.get("sources")),
        _documents(report.get("documents")),
        _context(report.get("retrieval")),
        _section("synthetic", "Synthetic rows", synthetic_body(report.get("synthetic"))),
    ]
    nav = "".join(f'<li><a href="#{anchor}">{name}</a></li>' for anchor, name in _SECTIONS)
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{_PAGE_CSS}{CHART_CSS}{_DETAIL_CSS}</style>\n</head>\n<body>\n<main>\n"
        f'<nav aria-label="Sections"><ul>{nav}</ul></nav>\n'
        + "\n".join(sections)
        + f"\n<footer>Rendered by {esc(report.get('built_with', 'slmkit'))} from report.json. "
        "No timestamp: the same dataset version always gives this same page.</footer>\n"
        "</main>\n</body>\n</html>\n"
    )


def write_card(report: dict[str, Any], path: Path) -> None:
    """Write report.html atomically: a temp file in the same folder, then renamed over `path`."""
    text = render_card(report)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; the card is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_SECTIONS = (
    ("summary", "Summary"),
    ("flow", "Flow"),
    ("splits", "Splits &amp; labels"),
    ("rejects", "Rejects"),
    ("pii", "PII"),
    ("duplicates", "Duplicates"),
    ("conflicts", "Conflicts"),
    ("lengths", "Lengths"),
    ("sources", "Sources"),
    ("documents", "Documents"),
    ("context", "Retrieved context"),
    ("synthetic", "Synthetic"),
)


# ----------------------------------------------------------------------------- sections


def _summary(report: dict[str, Any], counts: dict[str, Any]) -> str:
    c = _Counts(counts)
    problems = _accounting_problems(c)
    accounting = _badge(
        "Accounting",
        "FAIL" if problems else "PASS",
        "; ".join(problems) or "every input row is in one split or rejected with a reason",
    )
    canaries = _canary_badge(report.get("pii"))
    sources = report.get("sources") or []
    reasons = ", ".join(f"{esc(k)} ({fmt_num(v)})" for k, v in _top(counts.get("rejected_by_reason") or {}, 3))
    text = [
        f"Dataset <strong>{esc(report.get('task', 'unnamed task'))}</strong>"
        + (f" <code>{esc(report['version'])}</code>" if report.get("version") else "")
        + f" reads {fmt_num(c.input)} input rows"
        + (f" from {_plural(len(sources), 'source')}" if sources else "")
        + (f" ({_plural(c.blank_lines, 'blank line')} skipped)" if c.blank_lines else "")
        + f": {fmt_num(c.kept)} are kept ({fmt_num(c.train)} train, {fmt_num(c.validation)} validation, "
        f"{fmt_num(c.gold_from_sources)} gold) and {fmt_num(c.rejected)} rejected"
        + (f", most often as {reasons}" if reasons else "")
        + "."
    ]
    if c.gold > c.gold_from_sources:
        text.append(
            f"The locked gold set also holds {fmt_num(c.gold - c.gold_from_sources)} rows no longer in the sources."
        )
    pii = report.get("pii")
    if isinstance(pii, dict) and pii.get("enabled"):
        text.append(f"PII was found in {_plural(pii.get('rows_with_pii', 0), 'row')}.")
    text.append(f'Accounting: <strong class="accounting">{_accounting_line(c)}</strong>.')
    tiles = "".join(
        f'<div class="tile{" tile-bad" if name == "Rejected" and value else ""}"><span>{name}</span>'
        f"<strong>{fmt_num(value)}</strong></div>"
        for name, value in (
            ("Input", c.input),
            ("Kept", c.kept),
            ("Rejected", c.rejected),
            ("Train", c.train),
            ("Validation", c.validation),
            ("Gold", c.gold),
        )
    )
    meta = f"built with {esc(report.get('built_with', 'slmkit'))}"
    return (
        f'<header id="summary"><p class="eyebrow">Dataset card</p>'
        f'<h1>{esc(report.get("task", "dataset"))} <span class="version">{esc(report.get("version", ""))}</span></h1>'
        f'<p class="meta">{meta}</p><div class="badges">{accounting}{canaries}</div>'
        f'<h2 class="visually-hidden">Summary</h2><p class="lead">{" ".join(text)}</p>'
        f'<div class="tiles">{tiles}</div></header>'
    )


def _flow(stages: Any) -> str:
    body = "<p>What each stage received, passed on and rejected, top to bottom.</p>"
    if not stages:
        return _section("flow", "Flow", body + _not_run("the report lists no stages"))
    ordered = _with_missing_stages(list(stages))
    top = max((as_int(s.get("in")) for s in ordered if isinstance(s, dict)), default=0)
    chart_rows: list[tuple[str, list[tuple[str, int]], str]] = []
    table_rows = []
    for s in ordered:
        if isinstance(s, str):
            chart_rows.append((s, [], "not run"))
            table_rows.append(f'<tr><th scope="row">{esc(s)}</th><td colspan="3" class="not-run">not run</td></tr>')
            continue
        out, rejected = as_int(s.get("out")), as_int(s.get("rejected"))
        label = f"{fmt_num(out)} kept" + (f" · {fmt_num(rejected)} rejected" if rejected else "")
        chart_rows.append((str(s.get("stage", "?")), [("kept", out), ("rejected", rejected)], label))
        table_rows.append(
            f'<tr><th scope="row">{esc(s.get("stage", "?"))}</th>'
            f"{num_cell(s.get('in'))}{num_cell(out)}{num_cell(rejected)}</tr>"
        )
    chart = bar_chart("flow", "Rows kept and rejected at each stage", chart_rows, top=top)
    stage_table = table(["Stage", "In", "Out", "Rejected"], table_rows, numeric=(1, 2, 3))
    return _section("flow", "Flow", body + figure(chart, ["kept", "rejected"]) + stage_table)


def _splits(report: dict[str, Any], counts: dict[str, Any]) -> str:
    c = _Counts(counts)
    rows = []
    for split in SPLITS:
        value = getattr(c, split)
        rows.append(
            f'<tr><th scope="row">{split}</th>{num_cell(value)}<td class="num">{_share(value, c.kept)}</td></tr>'
        )
    body = table(["Split", "Rows", "Share of kept"], rows, numeric=(1, 2))
    splits = report.get("splits")
    if isinstance(splits, dict):
        gold_hash = splits.get("gold_hash")
        facts = [
            ("Seed", esc(splits.get("seed", "—"))),
            ("Stratified by label", "yes" if splits.get("stratify") else "no"),
            ("Grouped by", esc(splits["group_by"]) if splits.get("group_by") else "— (rows split one by one)"),
        ]
        if gold_hash:
            # The same for the build that drew it and every rebuild on it: the card is part of the version.
            facts.append(("Gold set", f"{_digest(gold_hash)} locked: every later build and eval checks this hash"))
        body += _facts(facts)
    by_label = report.get("by_label") or counts.get("by_label") or {}
    present = [s for s in SPLITS if isinstance(by_label.get(s), dict)]
    if not present:
        return _section("splits", "Splits &amp; labels", body + _not_run("no label counts (the task has no labels)"))
    labels: list[str] = []
    for split in present:
        labels += [str(label) for label in by_label[split] if str(label) not in labels]
    chart_rows = []
    table_rows = []
    for label in labels:
        values = [(split, as_int(by_label[split].get(label))) for split in present]
        total = sum(v for _, v in values)
        chart_rows.append((label, values, fmt_num(total)))
        table_rows.append(
            f'<tr><th scope="row">{esc(label)}</th>{"".join(num_cell(v) for _, v in values)}{num_cell(total)}</tr>'
        )
    chart = bar_chart("labels", "Rows per label, stacked by split", chart_rows)
    label_table = table(["Label", *present, "Total"], table_rows, numeric=range(1, len(present) + 2))
    body += "<h3>Rows per label</h3>" + figure(chart, present) + label_table
    return _section("splits", "Splits &amp; labels", body)


def _rejects(report: dict[str, Any], counts: dict[str, Any]) -> str:
    by_reason = counts.get("rejected_by_reason") or {}
    if not by_reason:
        return _section("rejects", "Rejects", "<p>No row was rejected.</p>")
    meanings = report.get("reject_kinds") or {}
    c = _Counts(counts)
    chart = bar_chart(
        "rejects", "Rejected rows by reason", [(k, [("rejected", as_int(v))], fmt_num(v)) for k, v in by_reason.items()]
    )
    rows = [
        f'<tr><th scope="row">{esc(kind)}</th>{num_cell(n)}<td class="num">{_share(n, c.input)}</td>'
        f"<td>{esc(meanings.get(kind) or REJECT_KINDS.get(kind, '—'))}</td></tr>"
        for kind, n in by_reason.items()
    ]
    reason_table = table(["Reason", "Rows", "Share of input", "Meaning"], rows, numeric=(1, 2), cls="full")
    note = "<p>Every rejected row is in <code>rejects.jsonl</code> with its file, line and reason.</p>"
    return _section("rejects", "Rejects", note + figure(chart, []) + reason_table)


def _pii(pii: Any) -> str:
    if not isinstance(pii, dict) or not pii.get("enabled"):
        return _section("pii", "PII", _not_run("PII detection is disabled in data.pii"))
    canaries = pii.get("canaries") or {}
    facts = [
        ("Rows with PII", fmt_num(pii.get("rows_with_pii", 0))),
        ("Entities checked", ", ".join(esc(x) for x in pii.get("entities") or []) or "—"),
        ("Name recognition (NER)", esc(pii["ner"]) if pii.get("ner") not in (None, "none") else "off"),
        (
            "Canaries",
            f"{fmt_num(canaries.get('configured', 0))} configured, {fmt_num(canaries.get('survived', 0))} survived",
        ),
    ]
    note = "<p>Personal data is replaced in inputs and answers before anything is written; the rows are kept.</p>"
    by_type = pii.get("by_type") or {}
    if not by_type:
        return _section("pii", "PII", note + _facts(facts) + "<p>No PII was found.</p>")
    ordered = sorted(by_type.items(), key=lambda kv: (-as_int(kv[1]), str(kv[0])))
    chart = bar_chart("pii", "PII found, by entity type", [(k, [("pii", as_int(v))], fmt_num(v)) for k, v in ordered])
    return _section("pii", "PII", note + _facts(facts) + figure(chart, []))


def _duplicates(dups: Any) -> str:
    if not isinstance(dups, dict):
        return _section("duplicates", "Duplicates", _not_run("the report has no duplicate counts"))
    rows = []
    for kind, how in (
        ("exact", "identical after normalizing"),
        ("near", "MinHash Jaccard ≥"),
        ("semantic", "cosine ≥"),
    ):
        d = dups.get(kind)
        if not isinstance(d, dict):
            rows.append(f'<tr><th scope="row">{kind}</th><td colspan="3" class="not-run">not run</td></tr>')
            continue
        threshold = f"{how} {d['threshold']}" if "threshold" in d else how
        numbers = num_cell(d.get("clusters")) + num_cell(d.get("removed"))
        rows.append(f'<tr><th scope="row">{kind}</th>{numbers}<td>{esc(threshold)}</td></tr>')
    body = table(["Kind", "Clusters", "Rows removed", "Match"], rows, numeric=(1, 2))
    examples = dups.get("examples") or []
    if examples:
        ex_rows = []
        for ex in examples[:MAX_EXAMPLES]:
            kept = ex.get("kept") or {}
            removed = "".join(
                f"<li>{_row_ref(r)}" + f"{_snippet(r.get('input'))}</li>" for r in ex.get("removed") or []
            )
            ex_rows.append(
                f'<tr><th scope="row">{esc(ex.get("kind", "?"))}</th>'
                f'<td class="num">{_float(ex.get("similarity"))}</td>'
                f'<td class="text">{_row_ref(kept)}{_snippet(kept.get("input"))}</td>'
                f'<td class="text"><ul class="plain">{removed}</ul></td></tr>'
            )
        body += f"<h3>Example clusters{_showing(len(examples))}</h3>"
        body += table(["Kind", "Similarity", "Kept", "Removed"], ex_rows, numeric=(1,), cls="full examples")
    return _section("duplicates", "Duplicates", body)


def _conflicts(conflicts: Any) -> str:
    if not isinstance(conflicts, dict):
        return _section("conflicts", "Conflicts", _not_run("the report has no conflict counts"))
    body = (
        f"<p>{_plural(conflicts.get('clusters', 0), 'cluster')} of rows with the same input but different answers: "
        f"all {fmt_num(conflicts.get('rows', 0))} of their rows are rejected, since no single answer can be trusted. "
        "Answer fields that differ within a cluster are highlighted.</p>"
    )
    examples = conflicts.get("examples") or []
    rows = []
    for number, ex in enumerate(examples[:MAX_EXAMPLES], start=1):
        members = ex.get("rows") or []
        differing = _differing_keys([m.get("output") for m in members])
        for i, m in enumerate(members):
            kind = f'<span class="muted">{esc(ex.get("kind", ""))}</span>'
            head = f'<th scope="row" rowspan="{len(members)}">#{number}<br>{kind}</th>' if i == 0 else ""
            rows.append(
                f'<tr class="{"group-start" if i == 0 else ""}">{head}'
                f'<td class="text">{_row_ref(m)}{_snippet(m.get("input"))}</td>'
                f'<td class="text">{_output(m.get("output"), differing)}</td></tr>'
            )
    if rows:
        body += f"<h3>Example clusters{_showing(len(examples))}</h3>"
        body += table(["Cluster", "Row and input", "Answer"], rows, cls="full examples")
    return _section("conflicts", "Conflicts", body)


def _lengths(lengths: Any) -> str:
    if not isinstance(lengths, dict) or not lengths:
        return _section("lengths", "Lengths", _not_run("the report has no length statistics"))
    body = ""
    for key, title in (
        ("input_chars", "Input length, in characters"),
        ("tokens", "Prompt + answer, in the base model's tokens"),
    ):
        dist = lengths.get(key)
        if not isinstance(dist, dict):
            body += f"<h3>{title}</h3>" + _not_run("not measured")
            continue
        stats = " · ".join(
            f"{name} {fmt_num(dist[k])}" for k, name in (("p50", "median"), ("p95", "p95"), ("max", "max")) if k in dist
        )
        edges = list(dist.get("edges") or [])
        charts = "".join(
            histogram(
                f"{key}-{split}", f"{split}: {fmt_num(sum(as_int(x) for x in counts))} rows", edges, counts, split
            )
            for split, counts in (dist.get("counts") or {}).items()
        )
        body += f'<h3>{title}</h3><p class="muted">{stats}</p><div class="multiples">{charts}</div>'
    return _section("lengths", "Lengths", body)


def _sources(sources: Any) -> str:
    if not sources:
        return _section("sources", "Sources", _not_run("the report lists no sources"))
    rows = [
        f'<tr><td class="path">{esc(s.get("path", "?"))}</td><td>{esc(s.get("format", "—"))}</td>'
        f"{num_cell(s.get('rows'))}"
        f"{num_cell(s.get('blank_lines', 0))}<td>{_digest(s.get('sha256'))}</td></tr>"
        for s in sources
    ]
    total = sum(as_int(s.get("rows")) for s in sources)
    rows.append(f'<tr class="total"><th scope="row" colspan="2">Total</th>{num_cell(total)}<td></td><td></td></tr>')
    note = "<p>The sha256 of each file as read; hover a hash for all 64 digits.</p>"
    return _section(
        "sources",
        "Sources",
        note + table(["Path", "Format", "Rows", "Blank lines", "sha256"], rows, numeric=(2, 3), cls="full"),
    )


def _documents(docs: Any) -> str:
    if not isinstance(docs, dict):
        return _section("documents", "Documents", _not_run("no documents are configured"))
    row = f"<tr>{num_cell(docs.get('files'))}{num_cell(docs.get('chunks'))}{num_cell(docs.get('chars'))}</tr>"
    note = "<p>Files kept as a corpus for grounding and retrieval, cut into chunks.</p>"
    return _section("documents", "Documents", note + table(["Files", "Chunks", "Characters"], [row], numeric=(0, 1, 2)))


_CONTEXT_SETTINGS = ("top_k", "oracle_share", "counterfactual_share", "entity_swap_share", "shuffle_context")


def _context(retrieval: Any) -> str:
    """How training rows got their retrieved chunks: the settings, rows of each kind, one changed chunk of each."""
    if not isinstance(retrieval, dict):
        return _section("context", "Retrieved context", _not_run("the task does not retrieve (no task.retrieval)"))
    groups = retrieval.get("training_groups") or []
    note = (
        "<p>Every row was given retrieved chunks (RAFT). Chunks come from public documents"
        + (f" and the groups {esc(', '.join(map(str, groups)))}" if groups else " only")
        + ". A counterfactual row changes the answer's value in its chunk and in the answer alike; a name-swap "
        "row replaces the question's name in the context and answers with the refusal.</p>"
    )
    facts = [(esc(key), esc(str(retrieval[key]))) for key in _CONTEXT_SETTINGS if key in retrieval]
    kinds = [
        f'<tr><th scope="row">{esc(kind)}</th>{num_cell(n)}</tr>'
        for kind, n in retrieval.items()
        if kind not in _CONTEXT_SETTINGS and kind not in ("training_groups", "examples") and isinstance(n, int)
    ]
    examples = "".join(
        f"<h3>{esc(kind)}</h3>{_row_ref({'source': ex.get('chunk')})}"
        f"{_snippet(ex.get('question'))}{_snippet(ex.get('text'))}"
        f"{_output({'answer': ex.get('answer')}, False)}"
        for kind, ex in (retrieval.get("examples") or {}).items()
        if isinstance(ex, dict)
    )
    return _section(
        "context", "Retrieved context", note + _facts(facts) + table(["Rows", "Count"], kinds, numeric=(1,)) + examples
    )


# ----------------------------------------------------------------------------- checks


class _Counts:
    """The counts the card reads, with `kept` derived when an older report lacks it."""

    def __init__(self, counts: dict[str, Any]) -> None:
        self.input = as_int(counts.get("input"))
        self.blank_lines = as_int(counts.get("blank_lines"))
        self.rejected = as_int(counts.get("rejected"))
        self.train = as_int(counts.get("train"))
        self.validation = as_int(counts.get("validation"))
        self.gold = as_int(counts.get("gold"))
        self.gold_from_sources = as_int(counts.get("gold_from_sources", counts.get("gold")))
        placed = self.train + self.validation + self.gold_from_sources
        self.kept = as_int(counts.get("kept", placed))
        self.placed = placed
        self.by_reason_total = sum(as_int(v) for v in (counts.get("rejected_by_reason") or {}).values())
        self.has_by_reason = "rejected_by_reason" in counts


def _accounting_line(c: _Counts) -> str:
    return f"{fmt_num(c.input)} in = {fmt_num(c.kept)} kept + {fmt_num(c.rejected)} rejected"


def _accounting_problems(c: _Counts) -> list[str]:
    problems = []
    if c.input != c.kept + c.rejected:
        problems.append(f"{c.input} in but {c.kept} kept + {c.rejected} rejected = {c.kept + c.rejected}")
    if c.kept != c.placed:
        problems.append(f"{c.kept} kept but train + validation + gold = {c.placed}")
    if c.has_by_reason and c.by_reason_total != c.rejected:
        problems.append(f"{c.rejected} rejected but the reasons add up to {c.by_reason_total}")
    return problems


def _canary_badge(pii: Any) -> str:
    if not isinstance(pii, dict) or not pii.get("enabled"):
        return _badge("Canaries", "NOT RUN", "PII detection is disabled, so no canary was checked")
    canaries = pii.get("canaries") or {}
    configured, survived = as_int(canaries.get("configured")), as_int(canaries.get("survived"))
    if survived:
        return _badge("Canaries", "FAIL", f"{survived} of {configured} planted canaries survived PII redaction")
    if not configured:
        return _badge("Canaries", "NONE", "no canary strings are configured in data.pii")
    return _badge("Canaries", "PASS", f"{configured} of {configured} planted canaries caught")


def _with_missing_stages(stages: list[dict[str, Any]]) -> list[dict[str, Any] | str]:
    """The report's stages with each known stage it lacks inserted, by name, where it would have run."""
    out: list[dict[str, Any] | str] = list(stages)
    names = [s.get("stage") for s in stages]
    for position, name in enumerate(STAGE_ORDER):
        if name in names:
            continue
        earlier = set(STAGE_ORDER[:position])
        at = 0
        for i, item in enumerate(out):
            if (item if isinstance(item, str) else item.get("stage")) in earlier:
                at = i + 1
        out.insert(at, name)
    return out


def _differing_keys(outputs: Sequence[Any]) -> set[str] | bool:
    """The answer fields whose values differ within a cluster (True: non-object answers that differ)."""
    if outputs and all(isinstance(o, dict) for o in outputs):
        keys = [k for o in outputs for k in o]
        return {k for k in keys if len({json.dumps(o.get(k), sort_keys=True) for o in outputs}) > 1}
    return len({json.dumps(o, sort_keys=True) for o in outputs}) > 1


# ----------------------------------------------------------------------------- small HTML pieces


def _section(anchor: str, heading: str, body: str) -> str:
    return f'<section id="{anchor}" aria-labelledby="{anchor}-h"><h2 id="{anchor}-h">{heading}</h2>{body}</section>'


def _facts(facts: Sequence[tuple[str, str]]) -> str:
    return '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"


def _badge(name: str, verdict: str, why: str) -> str:
    kind = {"PASS": "pass", "FAIL": "fail"}.get(verdict, "neutral")
    return (
        f'<p class="badge {kind}" title="{esc(why)}"><span class="badge-name">{name}</span>'
        f'<span class="badge-verdict">{verdict}</span><span class="badge-why">{esc(why)}</span></p>'
    )


def _not_run(why: str) -> str:
    return f'<p class="not-run"><strong>Not run</strong>: {esc(why)}.</p>'


def _row_ref(row: dict[str, Any]) -> str:
    """Where a row came from (file:line, id) and, for a removed duplicate, how similar it was."""
    bits = [esc(row[k]) for k in ("source", "id") if row.get(k)]
    if row.get("similarity") is not None:
        bits.append(f"similarity {_float(row['similarity'])}")
    return f'<div class="ref">{" · ".join(bits) or "—"}</div>'


def _snippet(text: Any) -> str:
    return f'<div class="snippet">{esc(clip("" if text is None else str(text), CLIP_CHARS))}</div>'


def _output(output: Any, differing: set[str] | bool) -> str:
    if isinstance(output, dict) and isinstance(differing, set):
        fields = []
        for k, v in output.items():
            field = f"{esc(json.dumps(k, ensure_ascii=False))}: {esc(json.dumps(v, ensure_ascii=False))}"
            fields.append(f"<mark>{field}</mark>" if k in differing else field)
        return '<div class="snippet json">{' + ", ".join(fields) + "}</div>"
    text = esc(json.dumps(output, ensure_ascii=False))
    return f'<div class="snippet json">{f"<mark>{text}</mark>" if differing else text}</div>'


def _showing(total: int) -> str:
    return f" (first {MAX_EXAMPLES} of {total})" if total > MAX_EXAMPLES else ""


def _top(by_key: dict[str, Any], k: int) -> list[tuple[str, Any]]:
    return sorted(by_key.items(), key=lambda kv: (-as_int(kv[1]), str(kv[0])))[:k]


def _share(part: Any, whole: int) -> str:
    return f"{as_int(part) / whole:.1%}" if whole else "—"


def _plural(n: Any, word: str) -> str:
    return f"{fmt_num(n)} {word}{'' if as_int(n) == 1 else 's'}"


def _float(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) and not isinstance(value, bool) else "—"


def _digest(digest: Any) -> str:
    """A sha256 shortened to 12 digits, all of them in the tooltip."""
    return f'<code title="{esc(digest or "")}">{esc(_short(digest))}</code>'


def _short(digest: Any) -> str:
    text = str(digest or "")
    text = text.removeprefix("sha256:")
    return text[:12] if text else "—"


# The page's style, in three parts: page and tables, the charts (shared), then the examples.
_PAGE_CSS = """
:root{--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--accent:#0072B2}
*{box-sizing:border-box}
html{-webkit-print-color-adjust:exact;print-color-adjust:exact}
body{margin:0;color:var(--ink);background:#fff;
font:15px/1.55 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1000px;margin:0 auto;padding:28px 32px 48px}
nav ul{list-style:none;margin:0 0 20px;padding:0 0 10px;display:flex;flex-wrap:wrap;gap:4px 16px;
border-bottom:1px solid var(--line);font-size:13px}
nav a{color:var(--muted);text-decoration:none}nav a:hover{color:var(--accent);text-decoration:underline}
.eyebrow{margin:0;color:var(--muted);font-size:12px;letter-spacing:.08em;text-transform:uppercase}
h1{margin:2px 0 4px;font-size:28px;line-height:1.2}
h1 .version{font:500 16px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:var(--muted);margin-left:8px}
h2{font-size:19px;margin:0 0 10px;padding-bottom:6px;border-bottom:1px solid var(--line)}
h3{font-size:15px;margin:20px 0 8px}
section{margin-top:36px}
.meta,.muted{color:var(--muted)}.meta{margin:0 0 12px;font-size:13px}
.lead{font-size:15.5px;max-width:80ch}
.accounting{white-space:nowrap;font-variant-numeric:tabular-nums}
.badges{display:flex;flex-wrap:wrap;gap:10px;margin:8px 0 4px}
.badge{display:inline-flex;align-items:center;gap:8px;margin:0;padding:5px 12px 5px 5px;border-radius:6px;
border:1px solid;font-size:13px}
.badge-name{font-weight:600}
.badge-verdict{font-weight:700;letter-spacing:.04em;padding:1px 8px;border-radius:4px;color:#fff}
.badge-why{color:var(--muted)}
.pass{border-color:#8dd9a4;background:#effbf2}.pass .badge-verdict{background:#1a7f37}
.fail{border-color:#f5a3a0;background:#fff1f0}.fail .badge-verdict{background:#cf222e}
.neutral{border-color:var(--line);background:var(--soft)}.neutral .badge-verdict{background:#6e7781}
.visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
.tiles{display:grid;grid-template-columns:repeat(6,1fr);gap:10px;margin-top:16px}
.tile{border:1px solid var(--line);border-radius:6px;padding:8px 12px;background:var(--soft)}
.tile span{display:block;font-size:12px;color:var(--muted);text-transform:uppercase;letter-spacing:.05em}
.tile strong{display:block;font-size:22px;font-variant-numeric:tabular-nums}
.tile-bad strong{color:#b3261e}
table{border-collapse:collapse;min-width:55%;margin:8px 0 4px;font-size:14px}\ntable.full{width:100%}
th,td{padding:6px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:baseline}
thead th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);
border-bottom:2px solid var(--line)}
tbody th{font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.total th,tr.total td{font-weight:600;border-top:2px solid var(--line)}
tr.group-start td,tr.group-start th{border-top:2px solid var(--line)}
td.not-run,.not-run{color:var(--muted);font-style:italic}
p.not-run{padding:8px 12px;background:var(--soft);border-left:3px solid var(--line)}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:4px 18px;margin:12px 0}
.facts dt{color:var(--muted)}.facts dd{margin:0}
"""

_DETAIL_CSS = """\
.ref{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:var(--muted);margin-bottom:3px;
overflow-wrap:anywhere}
.snippet{font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;
overflow-wrap:anywhere;background:var(--soft);border:1px solid #e6eaef;border-radius:4px;padding:5px 8px}
.json mark{background:#fff0b3;color:inherit;padding:0 2px;border-radius:2px}
ul.plain{list-style:none;margin:0;padding:0}ul.plain li+li{margin-top:8px}
table.examples td.text{width:44%}table.examples .num{width:6em}
code{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:var(--soft);padding:1px 4px;
border-radius:3px}
td.path{font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;overflow-wrap:anywhere}
footer{margin-top:48px;padding-top:12px;border-top:1px solid var(--line);font-size:12px;color:var(--muted)}
@media (max-width:760px){.tiles{grid-template-columns:repeat(3,1fr)}main{padding:16px}}
@media print{nav{display:none}main{max-width:none;padding:0}section{margin-top:24px}
h2,h3{break-after:avoid}figure,tr,.tiles,.badges{break-inside:avoid}a{color:inherit;text-decoration:none}}
@page{margin:16mm 14mm}
"""
