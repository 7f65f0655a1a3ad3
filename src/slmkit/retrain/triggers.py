"""`slmkit retrain --if-due`: is a retrain due by the triggers in monitor.retrain?

- every_days: the last retrain (released or blocked) started that long ago, or there was none;
- new_reviewed: that many production items were reviewed since the last retrain started;
- on_drift_alert: a drift alert (label, confidence, input or any drift) fires for the release
  behind release.alias (alert_state in requests.db, as the server's evaluations leave it).
Any one is enough; the reasons become the retrain's `why` in its record and the audit log.
An idempotent retrain makes an over-eager trigger harmless: an unchanged input trains nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from slmkit.config import ProjectConfig
from slmkit.monitor.alerts import needs_drift
from slmkit.monitor.queue import reviewed_since
from slmkit.monitor.requests import RequestLog
from slmkit.monitor.window import parse_stamp
from slmkit.registry import Registry


@dataclass
class Due:
    reasons: list[str] = field(default_factory=list)  # why it is due; empty: not due
    checked: list[str] = field(default_factory=list)  # each trigger and what it saw

    @property
    def due(self) -> bool:
        return bool(self.reasons)

    def lines(self) -> list[str]:
        head = "retrain due: " + "; ".join(self.reasons) if self.reasons else "retrain not due"
        return [head, *(f"  {line}" for line in self.checked)]


def due(config: ProjectConfig, registry: Registry, log: RequestLog, now: datetime | None = None) -> Due:
    """Each configured trigger, judged now."""
    now = now or datetime.now(UTC)
    settings = config.monitor.retrain
    out = Due()
    name, alias = config.task.name, config.release.alias
    finished = [r for r in registry.list_retrains(name) if r.outcome in ("released", "blocked")]
    last = finished[0] if finished else None
    if settings.every_days is None and settings.new_reviewed is None and not settings.on_drift_alert:
        out.checked.append("no trigger in monitor.retrain (every_days, new_reviewed, on_drift_alert): never due")
        return out
    if settings.every_days is not None:
        if last is None:
            out.reasons.append("no retrain yet (monitor.retrain.every_days)")
            out.checked.append(f"every {settings.every_days:g} days: no retrain yet")
        else:
            days = (now - parse_stamp(last.started_at)).total_seconds() / 86400
            if days >= settings.every_days:
                out.reasons.append(f"the last retrain started {days:.1f} days ago (every_days {settings.every_days:g})")
            out.checked.append(
                f"every {settings.every_days:g} days: the last retrain (#{last.id}) started {days:.1f} days ago"
            )
    if settings.new_reviewed is not None:
        count = reviewed_since(log, last.started_at if last else None)
        if count >= settings.new_reviewed:
            out.reasons.append(
                f"{count} production items reviewed since the last retrain (new_reviewed {settings.new_reviewed})"
            )
        out.checked.append(f"new_reviewed {settings.new_reviewed}: {count} reviewed since the last retrain")
    if settings.on_drift_alert:
        current = registry.current(name, alias)
        drift_rules = {rule.text for rule in config.monitor.alerts if needs_drift(rule)}
        firing = []
        if current is not None and drift_rules:
            rows = log.read(
                "SELECT rule, value, fired_at FROM alert_state WHERE release = ? AND state = 'firing'", (current.ref,)
            )
            firing = [f"'{r['rule']}' since {r['fired_at']}" for r in rows if r["rule"] in drift_rules]
        if firing:
            out.reasons.append(f"drift alert firing for {current.ref if current else '?'}: {', '.join(firing)}")
        what = "no drift rule in monitor.alerts" if not drift_rules else f"{len(firing)} drift alert(s) firing"
        out.checked.append(f"on_drift_alert: {what} for {current.ref if current else f'{name}@{alias} (not set)'}")
    return out
