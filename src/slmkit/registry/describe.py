"""Releases as text: one release in full, two side by side, and the audit log. No torch.

The CLI prints these lines; they are built here so that `slmkit releases show` and `diff` read
the same record the registry holds, with nothing left out.
"""

from __future__ import annotations

import json
from typing import Any

from slmkit.errors import RegistryError
from slmkit.registry.records import AuditEntry, Release
from slmkit.registry.registry import Registry

HEADLINE = ("schema_validity", "exact_match", "label_accuracy", "label_macro_f1")
AUDIT_ACTIONS = ("release", "alias", "rollback", "evidence")  # the default view: what moved and why


def release_lines(registry: Registry, release: Release) -> list[str]:
    """Every field of a release record, grouped, one per line."""
    p = release.provenance
    lines = [
        f"{release.ref}   aliases: {', '.join(release.aliases) or '-'}",
        _row("created", f"{release.created_at} by {release.created_by}"),
        _row("note", release.note or "-"),
        _row("parent", f"{release.name}@{release.parent_version}" if release.parent_version else "- (first release)"),
        _row("run", release.run_id),
        "adapter",
        _row("digest", f"sha256:{release.adapter_digest}"),
    ]
    if not p:
        lines.append(_row("provenance", "not recorded (released before slmkit recorded provenance)"))
    adapter = p.get("adapter", {})
    if p:
        lines.append(_row("method", adapter.get("method") or "-"))
        lines.append(_row("peft", _peft(adapter.get("peft"))))
    base = {**release.base_model, **p.get("base_model", {})}
    lines.append("base model")
    for key in ("model_id", "spec", "sha256", "revision", "source", "path"):
        if key in base:
            lines.append(_row(key.replace("_", " "), base[key] if base[key] is not None else "-"))
    if p:
        lines.append(_row("tokenizer", _sha(p.get("tokenizer", {}).get("sha256"))))
        lines.append(_row("chat template", _sha(p.get("chat_template", {}).get("sha256"))))
    lines += ["dataset", *_dataset_rows(registry, release)]
    lines += ["eval", *_eval_rows(registry, release)]
    if p:
        lines.append("code, libraries, machine")
        lines.append(_row("code", _code(p.get("code", {}))))
        lines.append(_row("libraries", _versions(p.get("libraries"))))
        training = p.get("training") or {}
        lines.append(_row("trained with", _versions(training.get("libraries")) if training else "-"))
        lines.append(_row("trained on", _flat(training.get("hardware")) if training else "-"))
        lines.append(_row("released on", _hardware(p.get("hardware", {}))))
    lines.append("evidence")
    if not release.evidence:
        lines.append(_row("-", "none recorded"))
    for item in release.evidence:
        lines.append(_row(item.kind, f"{item.status.upper()}  {item.detail.get('summary', '')}"))
        lines.append(_row("", f"recorded {item.created_at} by {item.created_by}"))
        extra = {k: v for k, v in item.detail.items() if k != "summary" and v not in (None, [], {})}
        if extra:
            lines.append(_row("", _flat(extra)))
    digest = p.get("config_sha256")
    lines.append("config" + (f" (sha256:{digest})" if digest else ""))
    lines += [_row(key, _value(value)) for key, value in flatten(release.config).items()]
    return lines


def diff_lines(registry: Registry, a: Release, b: Release) -> list[str]:
    """What changed from release `a` to `b`: config keys, data, metrics with deltas, and hashes."""
    lines = [f"{a.ref} -> {b.ref}"]
    before, after = flatten(a.config), flatten(b.config)
    changed = [k for k in sorted(set(before) | set(after)) if before.get(k, _ABSENT) != after.get(k, _ABSENT)]
    lines.append(f"config: {len(changed)} key(s) differ" if changed else "config: identical")
    lines += [_row(k, f"{_value(before.get(k, _ABSENT))} -> {_value(after.get(k, _ABSENT))}") for k in changed]

    lines.append("data")
    lines.append(_row("version", _change(a.dataset_version, b.dataset_version)))
    counts_a, counts_b = _counts(registry, a), _counts(registry, b)
    for key in ("input", "train", "validation", "gold", "rejected"):
        x, y = counts_a.get(key), counts_b.get(key)
        if x is None and y is None:
            continue
        delta = f" ({y - x:+d})" if isinstance(x, int) and isinstance(y, int) and x != y else ""
        lines.append(_row(key, f"{_value(x)} -> {_value(y)}{delta}"))

    metrics_a, metrics_b = _metrics(registry, a), _metrics(registry, b)
    for side in [s for s in ("adapter", "base") if s in metrics_a or s in metrics_b]:
        lines.append(f"metrics ({side}){'':<13}{'@' + str(a.version):>10}{'@' + str(b.version):>10}{'delta':>10}")
        names = [n for n in HEADLINE if n in metrics_a.get(side, {}) or n in metrics_b.get(side, {})]
        names += sorted((set(metrics_a.get(side, {})) | set(metrics_b.get(side, {}))) - set(HEADLINE))
        for name in names:
            x, y = metrics_a.get(side, {}).get(name), metrics_b.get(side, {}).get(name)
            delta = f"{y - x:+.3f}" if x is not None and y is not None else "-"
            lines.append(f"  {name:<28}{_num(x):>10}{_num(y):>10}{delta:>10}")

    lines.append("hashes")
    pa, pb = a.provenance, b.provenance
    hashes = [
        ("adapter", a.adapter_digest, b.adapter_digest),
        ("base model", a.base_model.get("sha256"), b.base_model.get("sha256")),
        ("tokenizer", pa.get("tokenizer", {}).get("sha256"), pb.get("tokenizer", {}).get("sha256")),
        ("chat template", pa.get("chat_template", {}).get("sha256"), pb.get("chat_template", {}).get("sha256")),
        ("gold set", a.gold_hash, b.gold_hash),
        ("eval report", a.eval_report_digest, b.eval_report_digest),
    ]
    for label, x, y in hashes:
        lines.append(_row(label, _change(_sha(x), _sha(y))))
    return lines


def audit_lines(entries: list[AuditEntry]) -> list[str]:
    """Audit entries, one line each: when, who, what, and why."""
    return [f"{e.ts[:19].replace('T', ' ')}  {e.actor:<24}{e.action:<10}{audit_detail(e)}" for e in entries]


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys -> leaf values (lists stay whole)."""
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, item in value.items():
            if str(key).startswith("_"):
                continue
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: value} if prefix else {}


# --- pieces ----------------------------------------------------------------------------

_ABSENT = object()


def _row(label: str, value: Any) -> str:
    return f"  {label:<18}{value}" if len(label) < 18 else f"  {label}  {value}"


def _value(value: Any) -> str:
    if value is _ABSENT:
        return "(absent)"
    if isinstance(value, str) and "\n" not in value and value.strip() == value:
        return value
    return json.dumps(value, ensure_ascii=False)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _sha(value: Any) -> str:
    return f"sha256:{value}" if value else "-"


def _change(x: str, y: str) -> str:
    return f"{x} (same)" if x == y else f"{x} -> {y}"


def _flat(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_flat(v)}" for k, v in value.items())
    return _value(value)


def _peft(settings: dict[str, Any] | None) -> str:
    if not settings:
        return "- (fully fine-tuned weights, or not recorded)"
    shown = []
    for key, value in settings.items():
        if key == "target_modules" and isinstance(value, list):
            names = sorted({str(m).rsplit(".", 1)[-1] for m in value})
            shown.append(f"target_modules {len(value)} ({', '.join(names)})")
        elif value is not None:
            shown.append(f"{key} {_value(value)}")
    return ", ".join(shown)


def _code(code: dict[str, Any]) -> str:
    parts = [f"slmkit {code.get('slmkit', '?')}"]
    for label, key in (("slmkit source", "slmkit_git"), ("project", "project_git")):
        git = code.get(key)
        parts.append(
            f"{label} git {git['commit'][:12]}{' (uncommitted changes)' if git.get('dirty') else ''}"
            if git
            else f"{label} not in git"
        )
    return "; ".join(parts)


def _versions(versions: dict[str, Any] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in versions.items()) if versions else "-"


def _hardware(hw: dict[str, Any]) -> str:
    ram = hw.get("ram_bytes")
    parts = [
        str(hw.get("cpu") or "-"),
        f"{hw.get('cores')} cores",
        f"{ram / 2**30:.1f} GiB RAM" if ram else "RAM unknown",
        ", ".join(hw.get("gpus") or []) or "no GPU",
    ]
    return "; ".join(parts)


def _dataset_rows(registry: Registry, release: Release) -> list[str]:
    data = release.provenance.get("dataset", {})
    rows = [_row("version", release.dataset_version + (f" (sha256:{data['digest']})" if "digest" in data else ""))]
    counts = _counts(registry, release)
    if counts:
        rows.append(
            _row(
                "counts",
                f"{counts.get('input', '?')} in: {counts.get('train', '?')} train, "
                f"{counts.get('validation', '?')} validation, {counts.get('gold', '?')} gold, "
                f"{counts.get('rejected', '?')} rejected",
            )
        )
    pii = data.get("pii")
    if pii:
        canaries = pii.get("canaries") or {}
        by_type = ", ".join(f"{k} {v}" for k, v in (pii.get("by_type") or {}).items())
        rows.append(
            _row(
                "pii",
                f"{'enabled' if pii.get('enabled') else 'DISABLED'}; {pii.get('rows_with_pii', 0)} rows replaced"
                + (f" ({by_type})" if by_type else "")
                + f"; canaries {canaries.get('configured', 0)} planted, {canaries.get('checked', 0)} checked, "
                f"{canaries.get('survived', 0)} survived",
            )
        )
    dedup = data.get("dedup")
    if dedup:
        removed = ", ".join(f"{v} {k}" for k, v in (dedup.get("removed") or {}).items() if v is not None)
        skipped = [s["stage"] for s in dedup.get("stages", []) if s.get("skipped")]
        rows.append(
            _row(
                "dedup",
                f"removed {removed or 'none'}"
                + (f"; skipped: {', '.join(skipped)}" if skipped else "")
                + f"; conflicting-label rows {dedup.get('conflict_rows', 0)}",
            )
        )
    rows.append(_row("gold set", f"sha256:{release.gold_hash}"))
    return rows


def _eval_rows(registry: Registry, release: Release) -> list[str]:
    rows = [_row("report", f"sha256:{release.eval_report_digest}")]
    recorded = release.provenance.get("eval")
    if recorded is None:
        found = registry.eval_by_digest(release.eval_report_digest)
        recorded = dict(found.summary) if found else {}
    for gate in recorded.get("gates", []):
        observed = gate.get("observed")
        rows.append(
            _row(
                "gate",
                f"{'PASS' if gate.get('passed') else 'FAIL'}  {gate.get('gate')} "
                f"(observed {_num(observed)}, needs {_num(gate.get('threshold'))})",
            )
        )
    metrics = _metrics(registry, release)
    sides = [s for s in ("base", "adapter") if s in metrics]
    if sides:
        rows.append(f"  {'metrics':<28}" + "".join(f"{s:>10}" for s in sides))
        names = [n for n in HEADLINE if any(n in metrics[s] for s in sides)]
        names += sorted({n for s in sides for n in metrics[s]} - set(HEADLINE))
        for name in names:
            rows.append(f"    {name:<26}" + "".join(f"{_num(metrics[s].get(name)):>10}" for s in sides))
    if "decoding" in recorded:
        rows.append(_row("decoding", _flat(recorded["decoding"])))
    if "items" in recorded:
        rows.append(_row("gold items", recorded["items"]))
    return rows


def _counts(registry: Registry, release: Release) -> dict[str, Any]:
    recorded = release.provenance.get("dataset", {}).get("counts")
    if recorded:
        return dict(recorded)
    try:
        return dict(registry.get_dataset(release.dataset_version).counts)
    except RegistryError:
        return {}


def _metrics(registry: Registry, release: Release) -> dict[str, dict[str, float | None]]:
    """side -> metric -> value, from the provenance or (older releases) the eval record."""
    recorded = release.provenance.get("eval", {}).get("metrics")
    if recorded is not None:
        return {side: dict(values) for side, values in recorded.items()}
    found = registry.eval_by_digest(release.eval_report_digest)
    if found is None:
        return {}
    return {
        side: {name: m.get("value") for name, m in values.items()}
        for side, values in found.summary.get("metrics", {}).items()
    }


def audit_detail(entry: AuditEntry) -> str:
    """What an audit entry did and why, in one line (without when and who)."""
    d = entry.detail
    name = entry.name or "-"
    if entry.action == "release":
        parent = f", after {name}@{d['parent']}" if d.get("parent") else ", first"
        note = f': "{d["note"]}"' if d.get("note") else ""
        return f"{name}@{d.get('version')} (run {d.get('run_id')}{parent}){note}"
    if entry.action in ("alias", "rollback"):
        before = d.get("from") if d.get("from") is not None else "unset"
        why = f": {d['reason']}" if d.get("reason") else ""
        return f"{name}@{d.get('alias')} {before} -> {d.get('to')}{why}"
    if entry.action == "evidence":
        return f"{name}@{d.get('version')} {d.get('kind')} {d.get('status')}: {d.get('summary', '')}"
    return f"{name} {_flat(d)}"
