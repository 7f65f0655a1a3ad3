"""Alert rules that run: evaluated per release, with pending -> firing -> resolved states kept in SQLite.

`evaluate_alerts` judges every rule of `monitor.alerts` for every release that served in the
rule's window (and every release an alert is still pending or firing for): the metric over the
window, compared with the threshold, once the window holds `min_requests` requests (an empty
or thin window is never a breach). A breach makes the alert `pending`; after `for` it is
`firing`; when the condition clears a firing alert is `resolved` and a pending one goes back
to `inactive`. A resolved alert fires again only after `cooldown`. Each change of state is a
row of `alert_events` with its evidence (the value, the window, the requests it was judged on,
a drift test's statistics), and a change to firing or resolved is POSTed to the configured
webhook, if any. The server runs this every `monitor.evaluate_every_s`; `slmkit monitor
alerts` runs it once (for cron). Both may run at once: each transition is one transaction that
re-reads the state it changes.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from slmkit.config import AlertRule, ProjectConfig
from slmkit.monitor.evaluate import Monitor, Snapshot
from slmkit.monitor.requests import RequestLog
from slmkit.monitor.window import connect, load_traffic, parse_stamp, releases_in, stamp

log = logging.getLogger("slmkit.monitor")

DRIFT_METRICS = ("drift", "label_drift", "confidence_drift", "input_drift")
MAX_NOTIFY_ATTEMPTS = 3
_OPS: dict[str, Callable[[float, float], bool]] = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


def needs_drift(rule: AlertRule) -> bool:
    return rule.metric.startswith(DRIFT_METRICS)


@dataclass
class RuleOutcome:
    """One rule judged for one release."""

    rule: str
    condition: str
    release: str
    value: float | None
    breached: bool | None  # None: not judged (too few requests, or the metric has no value)
    state: str
    previous: str
    evidence: dict[str, Any]

    @property
    def changed(self) -> bool:
        return self.state != self.previous

    def line(self) -> str:
        shown = "no value" if self.value is None else f"{self.value:.4g}"
        why = "" if self.breached is not None else f" ({self.evidence.get('why', 'not judged')})"
        moved = f" (was {self.previous})" if self.changed else ""
        return f"{self.state.upper():<9}{self.release:<24}{self.rule}: {shown}{why}{moved}"


@dataclass
class AlertRun:
    evaluated_at: datetime
    outcomes: list[RuleOutcome] = field(default_factory=list)
    snapshots: dict[tuple[str, float], Snapshot] = field(default_factory=dict)  # (release, window) -> metrics
    notified: list[dict[str, Any]] = field(default_factory=list)

    @property
    def firing(self) -> list[RuleOutcome]:
        return [o for o in self.outcomes if o.state == "firing"]


def evaluate_alerts(
    config: ProjectConfig,
    *,
    now: datetime | None = None,
    monitor: Monitor | None = None,
    request_log: RequestLog | None = None,
) -> AlertRun:
    """Judge every rule for every release concerned, move their states, notify; returns what it saw."""
    now = now or datetime.now(UTC)
    rules = config.monitor.alerts
    run = AlertRun(now)
    if not rules:
        return run
    path = config.state_dir / "requests.db"
    own_log = request_log is None
    writer = request_log or RequestLog(path)
    own_monitor = monitor is None
    monitor = monitor or Monitor(config)
    conn = connect(path)
    try:
        longest = max(rule.window_s for rule in rules)
        releases = dict.fromkeys(releases_in(conn, now - timedelta(seconds=longest), now))
        for release in _active_releases(writer):
            releases.setdefault(release)
        for name, version in releases:
            traffic = load_traffic(conn, name, version, now - timedelta(seconds=longest), now)
            for rule in rules:
                key = (traffic.ref, rule.window_s)
                wants_drift = needs_drift(rule)
                snap = run.snapshots.get(key)
                if snap is None or (wants_drift and snap.drift is None):
                    snap = monitor.snapshot(conn, traffic, rule.window_s, drift=wants_drift)
                    run.snapshots[key] = snap
                run.outcomes.append(_judge(writer, rule, snap, now))
        run.notified = _notify(config, writer, now)
    finally:
        conn.close()
        if own_monitor:
            monitor.close()
        if own_log:
            writer.close()
    return run


def _judge(writer: RequestLog, rule: AlertRule, snap: Snapshot, now: datetime) -> RuleOutcome:
    """The rule's value on the snapshot, and the state it moves the alert to (one transaction)."""
    requests = int(snap.metrics.get("requests") or 0)
    value = snap.value(rule.metric)
    evidence: dict[str, Any] = {
        "metric": rule.metric,
        "op": rule.op,
        "threshold": rule.threshold,
        "window": rule.window,
        "window_start": stamp(snap.start),
        "window_end": stamp(snap.end),
        "requests": requests,
        "answers": snap.metrics.get("answers"),
        "value": value,
    }
    if snap.drift is not None and rule.metric != "drift":
        test = rule.metric.split("_drift")[0]
        if test in snap.drift.results:
            evidence["test"] = snap.drift.as_dict()["tests"][test]
        elif test in snap.drift.skipped:
            evidence["test_skipped"] = snap.drift.skipped[test]
    elif snap.drift is not None:
        evidence["tests"] = snap.drift.as_dict()["tests"]
    breached: bool | None
    if requests < rule.min_requests:
        breached, evidence["why"] = None, f"{requests} requests < min_requests {rule.min_requests}"
    elif value is None:
        breached, evidence["why"] = None, evidence.get("test_skipped") or "the metric has no value in this window"
    else:
        breached = _OPS[rule.op](value, rule.threshold)
    with writer.transaction() as conn:
        row = conn.execute(
            "SELECT * FROM alert_state WHERE rule = ? AND release = ?", (rule.text, snap.release)
        ).fetchone()
        previous = row["state"] if row else "inactive"
        since = parse_stamp(row["since"]) if row else now
        fired_at = row["fired_at"] if row else None
        resolved_at = parse_stamp(row["resolved_at"]) if row and row["resolved_at"] else None
        state = previous
        if breached:
            if previous in ("inactive", "resolved"):
                state, since = "pending", now
            cooled = resolved_at is None or (now - resolved_at).total_seconds() >= rule.cooldown_s
            if state == "pending" and (now - since).total_seconds() >= rule.for_s and cooled:
                state, since, fired_at = "firing", now, stamp(now)
        elif previous == "firing":
            state, since, resolved_at = "resolved", now, now
        elif previous == "pending":
            state, since = "inactive", now
        conn.execute(
            "INSERT INTO alert_state (rule, release, state, since, value, evaluated_at, fired_at, resolved_at, "
            "evidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(rule, release) DO UPDATE SET "
            "state = excluded.state, since = excluded.since, value = excluded.value, "
            "evaluated_at = excluded.evaluated_at, "
            "fired_at = excluded.fired_at, resolved_at = excluded.resolved_at, evidence = excluded.evidence",
            (
                rule.text,
                snap.release,
                state,
                stamp(since),
                value,
                stamp(now),
                fired_at,
                stamp(resolved_at) if resolved_at else None,
                json.dumps(evidence, default=_plain),
            ),
        )
        if state != previous:
            conn.execute(
                "INSERT INTO alert_events (ts, rule, release, state, previous, value, evidence) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (stamp(now), rule.text, snap.release, state, previous, value, json.dumps(evidence, default=_plain)),
            )
    return RuleOutcome(rule.text, rule.condition, snap.release, value, breached, state, previous, evidence)


def _active_releases(writer: RequestLog) -> list[tuple[str, int]]:
    """Releases with an alert pending or firing: judged even when their traffic stopped, so they resolve."""
    found = []
    for row in writer.read("SELECT DISTINCT release FROM alert_state WHERE state IN ('pending', 'firing')"):
        name, _, version = str(row["release"]).rpartition("@")
        if name and version.isdigit():
            found.append((name, int(version)))
    return found


# --- reading the states (the console, `slmkit monitor alerts`) -----------------------------


def alert_states(writer: RequestLog) -> list[dict[str, Any]]:
    """The current state of every (rule, release) ever judged, firing first."""
    order = "CASE state WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 WHEN 'resolved' THEN 2 ELSE 3 END"
    rows = writer.read(f"SELECT * FROM alert_state ORDER BY {order}, rule, release")
    return [{**dict(r), "evidence": json.loads(r["evidence"])} for r in rows]


def alert_events(writer: RequestLog, limit: int = 100) -> list[dict[str, Any]]:
    """The latest changes of state, newest first, with their evidence and whether they were notified."""
    rows = writer.read("SELECT * FROM alert_events ORDER BY id DESC LIMIT ?", (limit,))
    return [{**dict(r), "evidence": json.loads(r["evidence"])} for r in rows]


# --- the webhook -------------------------------------------------------------------------


def _notify(config: ProjectConfig, writer: RequestLog, now: datetime) -> list[dict[str, Any]]:
    """POST every firing / resolved event not yet delivered (at most MAX_NOTIFY_ATTEMPTS tries each)."""
    hook = config.monitor.webhook
    if hook is None:
        return []
    pending = writer.read(
        "SELECT * FROM alert_events WHERE state IN ('firing', 'resolved') AND notified_at IS NULL "
        "AND notify_attempts < ? ORDER BY id",
        (MAX_NOTIFY_ATTEMPTS,),
    )
    sent = []
    token = os.environ.get(hook.token_env) if hook.token_env else None
    for event in pending:
        payload = {
            "project": config.task.name,
            "alert": event["rule"],
            "release": event["release"],
            "state": event["state"],
            "previous": event["previous"],
            "value": event["value"],
            "at": event["ts"],
            "evidence": json.loads(event["evidence"]),
        }
        error = post_json(hook.url, payload, timeout_s=hook.timeout_s, token=token)
        with writer.transaction() as conn:
            conn.execute(
                "UPDATE alert_events SET notify_attempts = notify_attempts + 1, notified_at = ?, notify_error = ? "
                "WHERE id = ?",
                (None if error else stamp(now), error, event["id"]),
            )
        if error:
            log.warning("alert webhook %s: %s", hook.url, error)
        else:
            sent.append(payload)
    return sent


def post_json(url: str, payload: dict[str, Any], *, timeout_s: float, token: str | None = None) -> str | None:
    """POST `payload` as JSON; None when the server answered 2xx, else what went wrong."""
    headers = {"Content-Type": "application/json", "User-Agent": "slmkit-monitor"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=json.dumps(payload, default=_plain).encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if 200 <= status < 300 else f"HTTP {status}"


def _plain(value: Any) -> Any:
    """numpy numbers in evidence as plain JSON numbers."""
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")
