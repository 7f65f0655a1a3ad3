"""`run_monitor`: per release, what production traffic looked like over a span, against its references.

For each release that served in [since, now) (or the one asked for): volume and every rate,
latency quantiles (end to end, time to first token, between tokens), the label mix against the
training set's and the release's own answers on the gold set, confidences against the eval's,
the drift tests over the span and over its last window, and a time series in `window`-wide
buckets. The result is printed as a table (`lines`), and written as monitor.json and
monitor.html (inline SVG, no script) by `write_reports`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from slmkit.config import ProjectConfig
from slmkit.monitor.alerts import alert_events, alert_states
from slmkit.monitor.capture import purge_expired
from slmkit.monitor.evaluate import Monitor, Snapshot
from slmkit.monitor.requests import RequestLog
from slmkit.monitor.window import Traffic, confidences, connect, load_traffic, releases_in, window_metrics

MAX_BUCKETS = 120
# The metrics each time-series bucket carries (the plots draw these).
SERIES = ("requests", "schema_valid_rate", "refusal_rate", "error_rate", "flagged_rate", "confidence_p50",
          "latency_p50_ms", "latency_p95_ms")  # fmt: skip
TABLE = ("requests", "answers", "requests_per_minute", "schema_valid_rate", "refusal_rate", "escalation_rate",
         "guard_replaced_rate", "error_rate", "null_field_rate", "flagged_rate", "confidence_p10", "confidence_p50",
         "latency_p50_ms", "latency_p95_ms", "latency_p99_ms", "ttft_p50_ms", "ttft_p95_ms", "inter_token_p50_ms",
         "inter_token_p95_ms")  # fmt: skip


@dataclass
class ReleaseReport:
    release: str
    span: Snapshot  # the whole [since, now), drift tests included
    last: Snapshot  # the last window
    series: list[dict[str, Any]]  # one entry per bucket: {"start": iso, **SERIES metrics}
    reference: dict[str, Any]
    confidence_sample: list[float] = field(default_factory=list)  # the span's confidences, for the plot

    def as_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "span": self.span.as_dict(),
            "last_window": self.last.as_dict(),
            "series": self.series,
            "reference": self.reference,
        }


@dataclass
class MonitorResult:
    task: str
    since: datetime
    until: datetime
    window_s: float
    releases: list[ReleaseReport]
    purged_captures: int = 0
    reference_confidences: dict[str, list[float]] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)  # each rule's state per release (alert_state)
    events: list[dict[str, Any]] = field(default_factory=list)  # the latest changes of state

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": "slmkit.monitor_report",
            "task": self.task,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "window_s": self.window_s,
            "releases": [r.as_dict() for r in self.releases],
            "purged_captures": self.purged_captures,
            "alerts": self.alerts,
            "events": self.events,
        }

    def lines(self) -> list[str]:
        head = f"{self.task}: {self.since:%Y-%m-%d %H:%M} -> {self.until:%Y-%m-%d %H:%M} UTC"
        if not self.releases:
            return [head, "no requests in this span"]
        refs = [r.release for r in self.releases]
        out = [head, f"{'metric':<24}" + "".join(f"{ref:>22}" for ref in refs)]
        for metric in TABLE:
            cells = "".join(f"{_fmt(r.span.metrics.get(metric)):>22}" for r in self.releases)
            out.append(f"{metric:<24}{cells}")
        for r in self.releases:
            labels = r.span.metrics.get("labels") or {}
            if labels:
                total = sum(labels.values())
                ref = r.reference.get("eval_labels") or {}
                ref_total = sum(ref.values()) or 1
                out.append(f"labels of {r.release} (traffic vs its answers on the gold set):")
                for label in sorted(set(labels) | set(ref)):
                    out.append(
                        f"  {label:<22}{labels.get(label, 0) / total:>8.3f}{ref.get(label, 0) / ref_total:>8.3f}"
                    )
            for name, snap in (("span", r.span), (f"last {_span(self.window_s)}", r.last)):
                if snap.drift is not None:
                    out.append(f"drift of {r.release} over the {name} ({snap.metrics['requests']} requests):")
                    out.extend(f"  {line}" for line in snap.drift.lines())
        return out


def run_monitor(
    config: ProjectConfig,
    *,
    ref: str | None = None,
    since: datetime | None = None,
    window_s: float = 3600.0,
    now: datetime | None = None,
    monitor: Monitor | None = None,
    read_only: bool = False,
) -> MonitorResult:
    """Read the request log over [since, now) (default: the last 24 hours) and judge each release's traffic.

    It also deletes captures past their retention (as the server does hourly), and builds a
    release's input drift reference if none is stored. `read_only=True` (the web console) does
    neither and opens the log read-only: nothing on disk changes, and a missing log is no traffic.
    """
    now = now or datetime.now(UTC)
    since = since or now - timedelta(days=1)
    path = config.state_dir / "requests.db"
    if read_only and not path.exists():
        return MonitorResult(config.task.name, since, now, window_s, [])
    log = RequestLog(path, read_only=read_only)
    try:
        purged = 0
        if not read_only:
            purged = purge_expired(
                log,
                config.monitor.capture.retention_days,
                now,
                embedding_retention_days=config.monitor.embedding_retention_days,
            )
        alerts, events = alert_states(log), alert_events(log, limit=50)
    finally:
        log.close()
    own = monitor is None
    monitor = monitor or Monitor(config, read_only=read_only)
    conn = connect(path, read_only=read_only)
    try:
        releases = releases_in(conn, since, now)
        if ref is not None:
            wanted = monitor.registry.resolve(ref, default_alias=config.release.alias)
            releases = [(wanted.name, wanted.version)]
        reports = []
        for name, version in releases:
            traffic = load_traffic(conn, name, version, since, now)
            span_s = (now - since).total_seconds()
            span = monitor.snapshot(conn, traffic, span_s, drift=True)
            last = monitor.snapshot(conn, traffic, min(window_s, span_s), drift=True)
            reference = monitor.task_reference(name, version)
            reports.append(
                ReleaseReport(
                    traffic.ref,
                    span,
                    last,
                    _series(traffic, window_s, len(reference.fields)),
                    reference.summary(),
                    confidences(traffic).tolist(),
                )
            )
        refs = {r.release: monitor.task_reference(*_split(r.release)).eval_confidences or [] for r in reports}
        return MonitorResult(config.task.name, since, now, window_s, reports, purged, refs, alerts, events)
    finally:
        conn.close()
        if own:
            monitor.close()


def write_reports(result: MonitorResult, out_dir: Path) -> tuple[Path, Path]:
    """monitor.json and monitor.html in `out_dir` (each written to a temp name, then renamed)."""
    import json

    from slmkit.monitor.page import render_page

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = (out_dir / "monitor.json", out_dir / "monitor.html")
    texts = (json.dumps(_finite(result.as_dict()), indent=2, ensure_ascii=False, default=_plain), render_page(result))
    for path, text in zip(paths, texts, strict=True):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return paths


def _series(traffic: Traffic, window_s: float, fields: int) -> list[dict[str, Any]]:
    """The SERIES metrics per bucket of `window_s` (widened so there are at most MAX_BUCKETS)."""
    span_s = (traffic.end - traffic.start).total_seconds()
    width = max(window_s, span_s / MAX_BUCKETS)
    buckets = np.floor(traffic.columns["t"] / width).astype(int) if len(traffic) else np.zeros(0, dtype=int)
    out = []
    for b in range(int(np.ceil(span_s / width))):
        mask = buckets == b
        if not mask.any():
            continue
        metrics = window_metrics(traffic, mask, fields=fields, span_s=width)
        start = traffic.start + timedelta(seconds=b * width)
        out.append({"start": start.isoformat(), "t": b * width, **{k: metrics.get(k) for k in SERIES}})
    return out


def _split(ref: str) -> tuple[str, int]:
    name, _, version = ref.rpartition("@")
    return name, int(version)


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3f}"
    return str(value)


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")
