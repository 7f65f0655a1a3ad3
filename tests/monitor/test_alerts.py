"""Window metrics and alert rules over a real request log: states, evidence, min_requests, cooldown, webhook."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slmkit.monitor.alerts import alert_events, alert_states, evaluate_alerts
from slmkit.monitor.window import connect, label_counts, load_traffic, window_metrics
from tests.monitor.conftest import T0, Monitored, monitored_project


def rules(*items: dict[str, Any]) -> dict[str, Any]:
    return {"monitor.alerts": list(items), "monitor.evaluate_every_s": 0}


def test_window_metrics_by_hand(monitored: Monitored) -> None:
    # 8 answers (latency 100..800 ms; 6 valid on the first try; 2 refusals; 1 escalation; 3 null
    # fields in all) and 2 errors.
    monitored.add(
        T0,
        8,
        latency_ms=lambda i: 100.0 * (i + 1),
        valid=lambda i: i < 6,
        refused=lambda i: i >= 6,
        escalate=lambda i: i == 0,
        null_fields=lambda i: 1 if i < 3 else 0,
        label=lambda i: "billing" if i < 6 else "out_of_scope",
        confidence=lambda i: 0.1 * (i + 1),
    )
    monitored.add(T0 + timedelta(seconds=30), 2, outcome="error", latency_ms=5.0, valid=None, label=None)
    conn = connect(monitored.config.state_dir / "requests.db")
    name, version, end = monitored.release.name, monitored.release.version, T0 + timedelta(minutes=1)
    traffic = load_traffic(conn, name, version, T0, end)
    m = window_metrics(traffic, fields=4, labels=label_counts(conn, name, version, T0, end))

    assert (m["requests"], m["answers"]) == (10, 8)
    assert m["error_rate"] == pytest.approx(2 / 10)
    assert m["schema_valid_rate"] == pytest.approx(6 / 8)
    assert m["refusal_rate"] == pytest.approx(2 / 8)
    assert m["escalation_rate"] == pytest.approx(1 / 8)
    assert m["null_field_rate"] == pytest.approx(3 / (8 * 4))
    assert m["latency_p50_ms"] == pytest.approx(450.0)  # between 400 and 500; errors are not answers
    assert m["confidence_p10"] == pytest.approx(np.quantile([0.1 * (i + 1) for i in range(8)], 0.1))
    assert m["labels"] == {"billing": 6, "out_of_scope": 2}
    assert m["label_share.out_of_scope"] == pytest.approx(0.25)
    assert m["requests_per_minute"] == pytest.approx(10.0)


def test_an_alert_goes_pending_then_firing_then_resolved_and_waits_out_its_cooldown(tmp_path: Path) -> None:
    rule = {
        "name": "answers break the schema",
        "metric": "schema_valid_rate",
        "op": "<",
        "threshold": 0.9,
        "window": "10m",
        "for": "2m",
        "min_requests": 5,
        "cooldown": "30m",
    }
    project = monitored_project(tmp_path / "p", **rules(rule))
    config, ref = project.config, project.release.ref

    def state_at(minutes: float) -> str:
        run = evaluate_alerts(config, now=T0 + timedelta(minutes=minutes))
        (outcome,) = run.outcomes
        return outcome.state

    project.add(T0, 20, valid=lambda i: i % 2 == 0)  # half the answers invalid
    assert state_at(1) == "pending"
    assert state_at(2.5) == "pending"  # pending since minute 1: `for` is 2m
    assert state_at(3.5) == "firing"
    assert state_at(5) == "firing"
    project.add(T0 + timedelta(minutes=12), 20, valid=True)  # the bad answers left the 10m window
    assert state_at(12.5) == "resolved"
    project.add(T0 + timedelta(minutes=20), 20, valid=False)
    assert state_at(21) == "pending"
    assert state_at(30) == "pending", "breached for 9 minutes, but resolved 17.5 minutes ago: cooling down"
    project.add(T0 + timedelta(minutes=36), 20, valid=False)
    assert state_at(43) == "firing"  # 30m after it resolved, still breached

    with project.log() as log:
        events = list(reversed(alert_events(log)))
        (state,) = alert_states(log)
    assert [(e["previous"], e["state"]) for e in events] == [
        ("inactive", "pending"),
        ("pending", "firing"),
        ("firing", "resolved"),
        ("resolved", "pending"),
        ("pending", "firing"),
    ]
    fired = events[1]
    assert fired["rule"] == "answers break the schema" and fired["release"] == ref
    assert fired["value"] == pytest.approx(0.5)
    assert fired["evidence"]["requests"] == 20 and fired["evidence"]["window"] == "10m"
    assert fired["evidence"]["window_start"] == "2026-12-01T08:53:30.000Z"
    assert state["state"] == "firing" and state["value"] == pytest.approx(0.0)


def test_a_thin_window_is_never_judged(tmp_path: Path) -> None:
    rule = {"metric": "error_rate", "op": ">", "threshold": 0.1, "window": "5m", "min_requests": 20}
    project = monitored_project(tmp_path / "p", **rules(rule))
    project.add(T0, 3, outcome="error", valid=None, label=None)  # 100% errors, but only 3 requests

    (outcome,) = evaluate_alerts(project.config, now=T0 + timedelta(minutes=1)).outcomes

    assert outcome.state == "inactive" and outcome.breached is None
    assert outcome.value == pytest.approx(1.0)
    assert outcome.evidence["why"] == "3 requests < min_requests 20"
    assert evaluate_alerts(project.config, now=T0 + timedelta(hours=3)).outcomes == []  # no traffic: nothing to judge


def test_label_drift_fires_on_a_moved_label_mix_and_stays_quiet_on_the_reference_mix(tmp_path: Path) -> None:
    rule = {"name": "label mix drift", "metric": "label_drift", "op": ">=", "threshold": 1, "window": "1h",
            "min_requests": 100}  # fmt: skip
    project = monitored_project(tmp_path / "p", **rules(rule))
    # The release answered its gold set 40 / 30 / 30; traffic in the same proportions is no drift.
    same = ["billing"] * 80 + ["shipping"] * 60 + ["technical"] * 60
    project.add(T0, len(same), label=lambda i: same[i])
    (quiet,) = evaluate_alerts(project.config, now=T0 + timedelta(minutes=10)).outcomes
    assert quiet.state == "inactive" and quiet.value == 0.0
    assert quiet.evidence["test"]["test"] == "chi_square" and quiet.evidence["test"]["n"] == 200

    # An hour later, 70% of answers are billing: the mix moved by 0.3.
    moved = ["billing"] * 140 + ["shipping"] * 30 + ["technical"] * 30
    project.add(T0 + timedelta(hours=1), len(moved), label=lambda i: moved[i])
    (loud,) = evaluate_alerts(project.config, now=T0 + timedelta(hours=1, minutes=10)).outcomes
    assert loud.state == "firing" and loud.value == 1.0
    test = loud.evidence["test"]
    assert test["drift"] is True and test["effect"] == pytest.approx(0.3) and test["p_adjusted"] < 0.01
    assert test["n_reference"] == 100


class Hook:
    """A local webhook receiver: records each JSON body; answers `status`."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.status = 200
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                hook.bodies.append(json.loads(self.rfile.read(length)))
                self.send_response(hook.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    receiver = Hook()
    yield receiver
    receiver.close()


def test_the_webhook_gets_firing_and_resolved_and_a_failed_delivery_is_retried(tmp_path: Path, hook: Hook) -> None:
    rule = {"name": "errors", "metric": "error_rate", "op": ">", "threshold": 0.2, "window": "5m", "min_requests": 5}
    project = monitored_project(tmp_path / "p", **rules(rule), **{"monitor.webhook": {"url": hook.url}})
    project.add(T0, 10, outcome="error", valid=None, label=None)

    hook.status = 500  # the receiver is down at first
    run = evaluate_alerts(project.config, now=T0 + timedelta(minutes=1))
    assert run.firing and run.notified == []
    with project.log() as log:
        (event,) = alert_events(log)
    assert event["notify_error"] == "HTTP 500" and event["notify_attempts"] == 1

    hook.status = 200
    evaluate_alerts(project.config, now=T0 + timedelta(minutes=2))  # still firing: the event is sent now
    project.add(T0 + timedelta(minutes=10), 10)
    evaluate_alerts(project.config, now=T0 + timedelta(minutes=11))  # resolved
    # Tried while the receiver answered 500, delivered at the next evaluation, then resolved.
    assert [(b["alert"], b["state"], b["release"]) for b in hook.bodies] == [
        ("errors", "firing", project.release.ref),
        ("errors", "firing", project.release.ref),
        ("errors", "resolved", project.release.ref),
    ]
    assert hook.bodies[-1]["value"] == 0.0 and hook.bodies[1]["evidence"]["requests"] == 10
    with project.log() as log:
        events = alert_events(log)
    assert all(e["notified_at"] for e in events)


def test_confidence_drift_compares_only_the_same_kind_of_confidence(tmp_path: Path) -> None:
    """An eval from before label scoring measured the least likely token; serving with label scoring records
    the label's probability. Compared, they would fire on unchanged traffic: the rule says why it cannot run."""
    from slmkit.monitor.rules import release_rule_checks
    from slmkit.registry import Registry
    from tests.monitor.conftest import example_inputs, record_release

    rule = {"name": "less sure", "metric": "confidence_drift", "op": ">=", "threshold": 1, "window": "1h",
            "min_requests": 100}  # fmt: skip
    outcomes = {}
    for scoring in (True, None):  # the eval scored labels as serving does; an eval from before label scoring
        project = monitored_project(tmp_path / str(scoring), **rules(rule))
        release = record_release(project.config, train_inputs=example_inputs(60), label_scoring=scoring)
        project.release = release
        # Served answers sure of their label (label scoring), against eval confidences spread over 0.5..1.
        project.add(T0, 200, confidence=lambda i: 0.99 + (i % 10) / 1000)
        (outcomes[scoring],) = evaluate_alerts(project.config, now=T0 + timedelta(minutes=10)).outcomes
        with Registry(project.config.state_dir) as registry:
            (check,) = release_rule_checks(project.config, registry, release, quick=True)
        assert check.evaluates is (scoring is True), check
        if scoring is None:
            assert "re-run `slmkit eval`" in check.detail

    assert outcomes[True].state == "firing" and outcomes[True].evidence["test"]["effect"] > 0.9
    stale = outcomes[None]
    assert stale.state == "inactive" and stale.value is None
    why = stale.evidence["why"]
    assert "least likely token's probability" in why and "label's probability" in why and "slmkit eval" in why
