"""The production checklist, judged only from recorded evidence. Never imports torch.

Each item reads what an earlier stage wrote: the eval report (schema validity against the
gates), the dataset's report.json (PII stage, canaries), the gold lock and the stored gold file,
evidence rows attached to the release (rollback rehearsal, latency under load, review sign-off)
and the monitoring alert rules of slmkit.yaml, as `slmkit.monitor.rules.check_rules` found them
when it evaluated each one for the release (the registry cannot evaluate them: it sits below the
monitor). An item passes, fails, is missing (no evidence recorded) or does not apply (n/a:
rolling back a first release).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slmkit.errors import RegistryError, ReleaseBlocked
from slmkit.registry.records import Evidence, NewEvidence, Release
from slmkit.registry.registry import Registry
from slmkit.registry.store import hash_file

TITLES = {
    "schema": "schema validation passes",
    "pii": "PII removed",
    "gold_locked": "eval set locked",
    "rollback": "rollback tested",
    "latency": "latency measured under load",
    "review": "human review of edge cases signed off",
    "alerts": "monitoring alerts defined",
}
HINTS = {
    "schema": "add a gate such as 'schema_validity >= 0.95' to eval.gates and train again, "
    "or drop 'schema' from release.blocking.",
    "pii": "plant fake secrets in data.pii.canaries (with data.pii.enabled) and rebuild the dataset, "
    "or drop 'pii' from release.blocking.",
    "gold_locked": "evaluate on the locked gold set (`slmkit eval`); a changed gold file means the store "
    "was edited: `slmkit registry verify` names what changed.",
    "rollback": "the release serving now does not answer as its eval recorded, so rolling back to it "
    "is not safe: see `slmkit releases show`, point the alias at a release that rehearses cleanly "
    "(`slmkit rollback --to N`) and release again.",
    "latency": "run the serving load benchmark against this release; it records latency evidence.",
    "review": "have a reviewer sign off the edge-case queue; it records review evidence.",
    "alerts": "add rules under monitor.alerts in slmkit.yaml, e.g. {metric: schema_valid_rate, op: '<', "
    "threshold: 0.95, window: 15m}, and fix or remove each rule named as not evaluating.",
}
MISSING_HINTS = {  # where "no evidence yet" needs another step than "failed"
    "gold_locked": "run `slmkit data build`: it draws and locks the gold set.",
    "rollback": "a release records its rollback rehearsal when it is made: release again with "
    "release.rehearsal_items above 0 (releases made before rehearsals have none).",
}
# What a release can know when it is made; latency and review evidence attach to it later.
KNOWN_AT_RELEASE = ("schema", "pii", "gold_locked", "rollback", "alerts")


@dataclass(frozen=True)
class CheckItem:
    """One checklist item: its status and the evidence it was judged on, in one line."""

    key: str
    status: str  # pass / fail / missing / n/a
    evidence: str
    blocking: bool = False

    @property
    def title(self) -> str:
        return TITLES[self.key]

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "n/a")

    def line(self) -> str:
        flag = " [blocking]" if self.blocking else ""
        return f"{self.status.upper():<8}{self.title:<40}{self.evidence}{flag}"


@dataclass(frozen=True)
class Checklist:
    subject: str  # support-tickets@2, or "run <id>" before it is a release
    items: list[CheckItem]

    def item(self, key: str) -> CheckItem:
        return next(i for i in self.items if i.key == key)

    def blockers(self, among: Sequence[str] | None = None) -> list[CheckItem]:
        """Blocking items that are not pass (or n/a), optionally only those in `among`."""
        return [i for i in self.items if i.blocking and not i.ok and (among is None or i.key in among)]

    def lines(self) -> list[str]:
        return [f"production checklist for {self.subject}", *(f"  {i.line()}" for i in self.items)]

    def refuse_blockers(self, what: str, among: Sequence[str] | None = None) -> None:
        """Raise ReleaseBlocked naming each blocking item that is not met, its evidence and the fix."""
        blockers = self.blockers(among)
        if blockers:
            raise ReleaseBlocked(
                f"{what}: " + "; ".join(f"{item.title}: {item.status} ({item.evidence})" for item in blockers),
                hint=" ".join(
                    MISSING_HINTS.get(item.key, HINTS[item.key]) if item.status == "missing" else HINTS[item.key]
                    for item in blockers
                ),
            )


AnyEvidence = Evidence | NewEvidence


@dataclass(frozen=True)
class RuleCheck:
    """One alert rule as evaluated for a release: whether it evaluates, and what it saw or lacks."""

    rule: str
    evaluates: bool
    detail: str


def release_checklist(
    registry: Registry, release: Release, *, alerts: Sequence[RuleCheck], blocking: Sequence[str]
) -> Checklist:
    """The checklist of a recorded release, from the evidence recorded for it."""
    return evaluate_checklist(
        registry,
        release.ref,
        task=release.name,
        eval_report_digest=release.eval_report_digest,
        dataset_version=release.dataset_version,
        gold_hash=release.gold_hash,
        evidence={kind: release.latest_evidence(kind) for kind in ("rehearsal", "latency", "review")},
        alerts=alerts,
        blocking=blocking,
    )


def evaluate_checklist(
    registry: Registry,
    subject: str,
    *,
    task: str,
    eval_report_digest: str,
    dataset_version: str,
    gold_hash: str,
    evidence: dict[str, AnyEvidence | None],
    alerts: Sequence[RuleCheck],
    blocking: Sequence[str],
) -> Checklist:
    """Every item, for a release or a candidate about to become one (its rehearsal in `evidence`)."""
    judged = [
        check_schema(_eval_report(registry, eval_report_digest)),
        check_pii(dataset_version, _dataset_report(registry, dataset_version)),
        check_gold_locked(registry, task, gold_hash, dataset_version),
        check_rollback(evidence.get("rehearsal")),
        check_recorded("latency", evidence.get("latency")),
        check_recorded("review", evidence.get("review")),
        check_alerts(alerts),
    ]
    return Checklist(subject, [CheckItem(i.key, i.status, i.evidence, blocking=i.key in blocking) for i in judged])


# --- the items -------------------------------------------------------------------------


def check_schema(report: dict[str, Any] | None) -> CheckItem:
    """Pass when the eval report has a gate on schema_validity and every such gate passed."""
    if report is None:
        return CheckItem("schema", "missing", "the release's eval report is not in the registry")
    gates = [g for g in report.get("gates", []) if g.get("metric") == "schema_validity"]
    observed = report.get("metrics", {}).get("adapter", {}).get("schema_validity", {}).get("value")
    shown = "not computed" if observed is None else f"{observed:.3f}"
    if not gates:
        return CheckItem(
            "schema",
            "missing",
            f"no gate on schema_validity in eval.gates (observed {shown}); add e.g. 'schema_validity >= 0.95'",
        )
    failed = [g for g in gates if not g.get("passed")]
    needs = ", ".join(g["gate"] for g in gates)
    if failed:
        return CheckItem("schema", "fail", f"schema_validity {shown} fails {', '.join(g['gate'] for g in failed)}")
    return CheckItem("schema", "pass", f"schema_validity {shown} on {report.get('items', '?')} gold items ({needs})")


def check_pii(dataset_version: str, report: dict[str, Any] | None) -> CheckItem:
    """Pass when the PII stage ran on the dataset and planted canaries were checked and none survived."""
    if report is None:
        return CheckItem("pii", "missing", f"dataset {dataset_version} has no report.json in the store")
    pii = report.get("pii") or {}
    ran = any(s.get("stage") == "pii" and not s.get("skipped") for s in report.get("stages", []))
    if not pii.get("enabled") or not ran:
        return CheckItem("pii", "fail", f"{dataset_version}: the PII stage did not run (data.pii.enabled: false)")
    canaries = pii.get("canaries") or {}
    configured, checked, survived = (int(canaries.get(k, 0)) for k in ("configured", "checked", "survived"))
    replaced = f"{pii.get('rows_with_pii', 0)} rows had personal data replaced"
    if survived:
        return CheckItem("pii", "fail", f"{dataset_version}: {survived} of {configured} canaries survived the build")
    if configured == 0:
        return CheckItem(
            "pii",
            "missing",
            f"{dataset_version}: {replaced}, but no canaries were planted (data.pii.canaries), "
            "so nothing shows the stage catches a known secret",
        )
    if checked < configured:
        return CheckItem("pii", "fail", f"{dataset_version}: only {checked} of {configured} canaries were checked")
    return CheckItem(
        "pii", "pass", f"{dataset_version}: {replaced}; {checked}/{configured} canaries checked, none survived"
    )


def check_gold_locked(registry: Registry, task: str, gold_hash: str, dataset_version: str) -> CheckItem:
    """Pass when the gold set evaluated is the locked one and its stored file still hashes to it."""
    lock = registry.gold_lock(task)
    if lock is None:
        return CheckItem("gold_locked", "missing", f"no gold set is locked for {task}")
    if lock.gold_hash != gold_hash:
        return CheckItem(
            "gold_locked",
            "fail",
            f"evaluated on gold sha256:{gold_hash[:12]}, but the locked gold set is now sha256:{lock.gold_hash[:12]} "
            f"(locked {lock.locked_at[:10]} from {lock.dataset_version})",
        )
    try:
        gold_file = registry.store.path(registry.get_dataset(dataset_version).digest) / "gold.jsonl"
        actual = hash_file(gold_file)
    except (RegistryError, OSError) as exc:
        return CheckItem("gold_locked", "fail", f"cannot re-hash the gold file of {dataset_version}: {exc}")
    if actual != gold_hash:
        return CheckItem(
            "gold_locked", "fail", f"{dataset_version}/gold.jsonl now hashes to {actual[:12]}, not {gold_hash[:12]}"
        )
    return CheckItem(
        "gold_locked",
        "pass",
        f"gold sha256:{gold_hash[:12]} locked since {lock.locked_at[:10]}; "
        f"{dataset_version}/gold.jsonl still hashes to it",
    )


def check_rollback(rehearsal: AnyEvidence | None) -> CheckItem:
    """The rollback rehearsal recorded at release time: pass, fail, or n/a for a first release."""
    if rehearsal is None:
        return CheckItem(
            "rollback",
            "missing",
            "no rollback rehearsal recorded (released before rehearsals, or release.rehearsal_items: 0)",
        )
    return CheckItem("rollback", rehearsal.status, str(rehearsal.detail.get("summary", "")))


def check_recorded(kind: str, evidence: AnyEvidence | None) -> CheckItem:
    """Evidence recorded after release (latency under load, review sign-off): its latest verdict."""
    if evidence is None:
        how = {
            "latency": "the serving load benchmark records it",
            "review": "a reviewer's sign-off on the edge-case queue records it",
        }[kind]
        return CheckItem(kind, "missing", f"no {kind} evidence recorded for this release ({how})")
    when = f" ({evidence.created_at[:10]}, {evidence.created_by})" if isinstance(evidence, Evidence) else ""
    return CheckItem(kind, evidence.status, f"{evidence.detail.get('summary', '')}{when}")


def check_alerts(alerts: Sequence[RuleCheck]) -> CheckItem:
    """Pass when slmkit.yaml defines at least one alert rule and every rule evaluates for the release."""
    if not alerts:
        return CheckItem("alerts", "missing", "no monitor.alerts in slmkit.yaml")
    broken = [a for a in alerts if not a.evaluates]
    if broken:
        return CheckItem(
            "alerts",
            "fail",
            f"{len(broken)} of {len(alerts)} rule(s) cannot evaluate: "
            + "; ".join(f"{a.rule}: {a.detail}" for a in broken),
        )
    shown = "; ".join(a.rule for a in alerts[:4]) + (f"; and {len(alerts) - 4} more" if len(alerts) > 4 else "")
    return CheckItem("alerts", "pass", f"{len(alerts)} rule(s) evaluate: {shown}")


# --- reading the recorded artifacts -----------------------------------------------------


def _eval_report(registry: Registry, digest: str) -> dict[str, Any] | None:
    """The stored eval report, or its summary row when only that survives; None when neither."""
    if registry.store.exists(digest):
        try:
            data = json.loads(registry.store.path(digest).read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return data
        except (OSError, ValueError):
            pass
    record = registry.eval_by_digest(digest)
    return dict(record.summary) if record is not None else None


def _dataset_report(registry: Registry, version: str) -> dict[str, Any] | None:
    try:
        path = registry.store.path(registry.get_dataset(version).digest) / "report.json"
        data = json.loads(path.read_text(encoding="utf-8"))
    except (RegistryError, OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None
