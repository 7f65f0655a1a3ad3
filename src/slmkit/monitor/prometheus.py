"""The alert rules for Prometheus and Grafana, and the monitor's own series on /metrics.

`slmkit monitor rules` writes the rules of `monitor.alerts` as a Prometheus alerting-rules file
over the series `slmkit serve` exports, and a Grafana dashboard of the same series, so a team
that already runs Prometheus gets the same alerts there. Rates the gateway counts natively
(schema validity, refusals, replacements, errors, latency quantiles) are computed in PromQL from
its counters and histograms; task signals it cannot count (escalations, null fields,
confidence, label shares, drift tests) come from `slmkit_monitor_value`, which the server's
alert timer sets from the request log for each rule's window. `cooldown` has no Prometheus
counterpart (Alertmanager's `repeat_interval` is the nearest), so it is written as an annotation.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from slmkit.config import AlertRule, ProjectConfig

# Metrics PromQL computes from the gateway's own series: (numerator counter, denominator counter).
_RATIOS = {
    "schema_valid_rate": ("slmkit_schema_valid_first_try_total", "slmkit_answers_total"),
    "refusal_rate": ("slmkit_refusals_total", "slmkit_answers_total"),
    "guard_replaced_rate": ("slmkit_guard_replacements_total", "slmkit_answers_total"),
}
_HISTOGRAMS = {
    "latency_p50_ms": ("slmkit_request_latency_seconds_bucket", 0.50),
    "latency_p95_ms": ("slmkit_request_latency_seconds_bucket", 0.95),
    "latency_p99_ms": ("slmkit_request_latency_seconds_bucket", 0.99),
    "ttft_p95_ms": ("slmkit_time_to_first_token_seconds_bucket", 0.95),
    "inter_token_p95_ms": ("slmkit_inter_token_latency_seconds_bucket", 0.95),
}
ALERT_STATES = {"inactive": 0, "resolved": 0, "pending": 1, "firing": 2}


def metric_expr(metric: str, window: str) -> str:
    """PromQL for one monitor metric per release over `window`."""
    if metric in _RATIOS:
        top, bottom = _RATIOS[metric]
        return f"sum by (release) (increase({top}[{window}])) / sum by (release) (increase({bottom}[{window}]))"
    if metric in _HISTOGRAMS:
        series, q = _HISTOGRAMS[metric]
        return f"1000 * histogram_quantile({q}, sum by (release, le) (rate({series}[{window}])))"
    if metric == "error_rate":
        return (
            f'sum by (release) (increase(slmkit_requests_total{{outcome!~"ok|refused"}}[{window}])) '
            f"/ sum by (release) (increase(slmkit_requests_total[{window}]))"
        )
    if metric == "requests":
        return f"sum by (release) (increase(slmkit_requests_total[{window}]))"
    if metric == "requests_per_minute":
        return f"60 * sum by (release) (rate(slmkit_requests_total[{window}]))"
    return f'max by (release) (slmkit_monitor_value{{metric="{metric}", window="{window}"}})'


def alert_expr(rule: AlertRule) -> str:
    """The rule's condition, judged only where the window holds `min_requests` requests."""
    volume = f"sum by (release) (increase(slmkit_requests_total[{rule.window}]))"
    condition = f"({metric_expr(rule.metric, rule.window)}) {rule.op} {rule.threshold:g}"
    return f"{condition} and on (release) ({volume} >= {rule.min_requests})"


def alert_name(rule: AlertRule) -> str:
    """A Prometheus alert name (a metric-name-like identifier) from the rule's name or metric."""
    words = re.findall(r"[A-Za-z0-9]+", rule.name or rule.metric)
    return "Slmkit" + "".join(w[:1].upper() + w[1:] for w in words)


def rules_file(config: ProjectConfig) -> dict[str, Any]:
    """The Prometheus alerting-rules document (write it as YAML)."""
    rules = []
    for rule in config.monitor.alerts:
        entry: dict[str, Any] = {
            "alert": alert_name(rule),
            "expr": alert_expr(rule),
            "labels": {"severity": "warning", "task": config.task.name},
            "annotations": {
                "summary": f"{config.task.name} {{{{ $labels.release }}}}: {rule.text}",
                "description": f"{rule.condition} (value {{{{ $value }}}}; at least {rule.min_requests} requests "
                f"in the window). slmkit's own evaluation adds a cooldown of {rule.cooldown} after it resolves.",
            },
        }
        if rule.for_s > 0:
            entry["for"] = rule.for_
        rules.append(entry)
    return {"groups": [{"name": f"slmkit-{config.task.name}", "rules": rules}]}


def dashboard(config: ProjectConfig) -> dict[str, Any]:
    """A Grafana dashboard (JSON model) of the gateway and monitor series, one row of panels per topic."""
    rate = "$__rate_interval"
    per_window = "{{metric}} {{release}} ({{window}})"

    def monitored(selector: str) -> list[tuple[str, str]]:
        return [(per_window, f"slmkit_monitor_value{{{selector}}}")]

    latency = [(f"p{m[-6:-4]} {{{{release}}}}", metric_expr(m, rate)) for m in ("latency_p50_ms", "latency_p95_ms")]
    panels: list[tuple[str, list[tuple[str, str]], str]] = [
        (
            "Requests per second",
            [("{{release}} {{outcome}}", f"sum by (release, outcome) (rate(slmkit_requests_total[{rate}]))")],
            "reqps",
        ),
        ("Schema-valid first try", [("{{release}}", metric_expr("schema_valid_rate", rate))], "percentunit"),
        (
            "Refusals and guard replacements",
            [
                ("refusals {{release}}", metric_expr("refusal_rate", rate)),
                ("replaced {{release}}", metric_expr("guard_replaced_rate", rate)),
            ],
            "percentunit",
        ),
        ("Errors", [("{{release}}", metric_expr("error_rate", rate))], "percentunit"),
        ("Latency", [*latency, ("p99 {{release}}", metric_expr("latency_p99_ms", rate))], "ms"),
        (
            "Time to first token and inter-token p95",
            [
                ("TTFT {{release}}", metric_expr("ttft_p95_ms", rate)),
                ("inter-token {{release}}", metric_expr("inter_token_p95_ms", rate)),
            ],
            "ms",
        ),
        ("Drift p-values (Holm-adjusted)", monitored('metric=~".+_drift_p"'), "none"),
        ("Drift effect sizes", monitored('metric=~".+_drift_effect"'), "none"),
        ("Confidence (least likely token)", monitored('metric=~"confidence_p.+"'), "percentunit"),
        ("Label shares", monitored('metric=~"label_share[.].+"'), "percentunit"),
        ("Inputs unlike training (flagged)", monitored('metric="flagged_rate"'), "percentunit"),
        ("Alert states (0 ok, 1 pending, 2 firing)", [("{{alert}} {{release}}", "slmkit_alert_state")], "none"),
    ]
    out = []
    for i, (title, targets, unit) in enumerate(panels):
        out.append(
            {
                "id": i + 1,
                "type": "timeseries",
                "title": title,
                "datasource": {"type": "prometheus", "uid": "${datasource}"},
                "gridPos": {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)},
                "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
                "targets": [
                    {"refId": chr(ord("A") + j), "expr": expr, "legendFormat": legend}
                    for j, (legend, expr) in enumerate(targets)
                ],
            }
        )
    return {
        "title": f"slmkit: {config.task.name}",
        "uid": f"slmkit-{config.task.name}"[:40],
        "tags": ["slmkit"],
        "timezone": "utc",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [{"name": "datasource", "type": "datasource", "query": "prometheus", "label": "Prometheus"}]
        },
        "panels": out,
    }


class MonitorCollector:
    """/metrics series from the alert timer's last run: each window's metric values and each alert's state."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        values = GaugeMetricFamily(
            "slmkit_monitor_value",
            "Task metrics per release over each alert rule's window, from the request log (slmkit monitor).",
            labels=["release", "metric", "window"],
        )
        states = GaugeMetricFamily(
            "slmkit_alert_state",
            "slmkit alert rules per release: 0 ok, 1 pending, 2 firing.",
            labels=["alert", "release"],
        )
        run = self.loop.last
        if run is not None:
            windows = {rule.window_s: rule.window for rule in self.loop.config.monitor.alerts}
            for (release, window_s), snap in run.snapshots.items():
                scalars = {k: v for k, v in snap.metrics.items() if isinstance(v, int | float) and v is not None}
                if snap.drift is not None:
                    scalars.update({k: v for k, v in snap.drift.metrics().items() if v is not None})
                for metric, value in sorted(scalars.items()):
                    values.add_metric([release, metric, windows.get(window_s, f"{window_s:g}s")], float(value))
            for outcome in run.outcomes:
                states.add_metric([outcome.rule, outcome.release], ALERT_STATES[outcome.state])
        yield values
        yield states

    def describe(self) -> list[Any]:
        return []  # collected only when scraped; nothing to check at registration
