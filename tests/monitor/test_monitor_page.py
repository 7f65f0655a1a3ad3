"""`slmkit monitor`: the table, monitor.json and monitor.html (checked in headless Chromium)."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from slmkit.monitor.alerts import evaluate_alerts
from slmkit.monitor.requests import CaptureRow, RequestLog
from slmkit.monitor.run import run_monitor, write_reports
from tests.data.test_card import CHROMIUM, chart, dump_dom, needs_chromium, section
from tests.monitor.conftest import T0, Monitored, monitored_project, record_release

XSS = '<script>alert("owned")</script> label drift'


@pytest.fixture
def busy(tmp_path: Path) -> Monitored:
    """Three hours of traffic: two ordinary hours, then an hour where 70% of answers are billing."""
    rule = {"name": XSS, "metric": "label_drift", "op": ">=", "threshold": 1, "window": "1h", "min_requests": 100}
    project = monitored_project(tmp_path / "p", **{"monitor.alerts": [rule], "monitor.evaluate_every_s": 0})
    ordinary = ["billing"] * 4 + ["shipping"] * 3 + ["technical"] * 3
    for hour in range(2):
        project.add(T0 + timedelta(hours=hour), 200, spacing_s=15, label=lambda i: ordinary[i % 10],
                    confidence=lambda i: 0.55 + 0.04 * (i % 10), latency_ms=lambda i: 400.0 + i)  # fmt: skip
    moved = ["billing"] * 7 + ["shipping", "technical", "technical"]
    project.add(T0 + timedelta(hours=2), 200, spacing_s=15, label=lambda i: moved[i % 10],
                confidence=lambda i: 0.55 + 0.04 * (i % 10), valid=lambda i: i % 20 != 0)  # fmt: skip
    evaluate_alerts(project.config, now=T0 + timedelta(hours=3))
    return project


def test_the_report_compares_each_hour_with_the_release_references(busy: Monitored, tmp_path: Path) -> None:
    result = run_monitor(busy.config, since=T0, now=T0 + timedelta(hours=3), window_s=3600)
    lines = "\n".join(result.lines())
    (report,) = result.releases
    assert report.release == busy.release.ref
    assert report.span.metrics["requests"] == 600
    assert [b["requests"] for b in report.series] == [200, 200, 200]
    assert report.series[2]["schema_valid_rate"] == pytest.approx(0.95)
    assert report.span.drift is not None and report.last.drift is not None
    assert report.last.drift.decisions["label"].drift, "the last hour's mix moved by 0.3"
    assert "schema_valid_rate" in lines and "labels of support-tickets@1" in lines
    assert "drift of support-tickets@1 over the last 1h (200 requests):" in lines
    assert result.alerts[0]["state"] == "firing"

    json_path, html_path = write_reports(result, tmp_path / "out")
    data = json.loads(json_path.read_text())
    assert data["releases"][0]["last_window"]["drift"]["tests"]["label"]["drift"] is True
    assert data["releases"][0]["reference"]["eval_labels"] == {"billing": 40, "shipping": 30, "technical": 30}
    page = html_path.read_text()
    assert "<script" not in page.replace("&lt;script&gt;", "")
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["monitor.html", "monitor.json"]


@needs_chromium
def test_monitor_html_in_a_browser(busy: Monitored, tmp_path: Path) -> None:
    assert CHROMIUM is not None
    result = run_monitor(busy.config, since=T0, now=T0 + timedelta(hours=3), window_s=3600)
    _, html_path = write_reports(result, tmp_path / "out")

    dom = dump_dom(html_path, tmp_path)

    assert "alert(" not in re.sub(r"&lt;script&gt;alert\(&quot;owned&quot;\)", "", dom.replace('"', "&quot;"))
    alerts = section(dom, "alerts")
    assert "firing" in alerts and "&lt;script&gt;" in alerts
    requests = chart(dom, "series-requests")
    assert requests.count("<circle") == 3  # one point per hour
    release = section(dom, "release-support-tickets-1")
    labels = chart(release, "labels-release-support-tickets-1")
    # Three labels x (traffic, the release's answers on the gold set, training labels): the fixture's
    # training split is all billing, so two training bars are empty.
    assert len(re.findall(r'<rect class="bar s-served"', labels)) == 3
    assert len(re.findall(r'<rect class="bar s-gold"', labels)) == 3
    assert len(re.findall(r'<rect class="bar s-train"', labels)) == 1
    assert 'data-chart="confidence-served-release-support-tickets-1"' in release
    assert "DRIFT" in release and "total variation distance" in release


def test_two_releases_that_served_in_the_span_are_side_by_side(tmp_path: Path) -> None:
    project = monitored_project(tmp_path / "p")
    second = record_release(project.config, train_inputs=["Subject: a\n\nb"] * 40, mix={"billing": 50, "shipping": 50})
    project.add(T0, 50, latency_ms=100.0)
    Monitored(project.config, second).add(T0 + timedelta(minutes=30), 80, latency_ms=300.0, label="shipping")

    result = run_monitor(project.config, since=T0, now=T0 + timedelta(hours=1), window_s=600)

    assert [r.release for r in result.releases] == ["support-tickets@1", "support-tickets@2"]
    lines = result.lines()
    assert lines[1].split() == ["metric", "support-tickets@1", "support-tickets@2"]
    assert next(line for line in lines if line.startswith("requests ")).split() == ["requests", "50", "80"]
    assert next(line for line in lines if line.startswith("latency_p50_ms")).split() == [
        "latency_p50_ms",
        "100.0",
        "300.0",
    ]
    assert result.releases[1].reference["eval_labels"] == {"billing": 50, "shipping": 50}


def test_a_read_only_report_changes_nothing_on_disk(busy: Monitored, tmp_path: Path) -> None:
    """The web console reads with read_only=True: the same numbers, but no capture purged and no byte of
    requests.db written; the default (`slmkit monitor`) still deletes what is past its retention."""
    log_path = busy.config.state_dir / "requests.db"
    with busy.log() as log:  # a capture from long before the 30-day retention
        log.append([], [CaptureRow("old-1", "2026-09-01T00:00:00.000Z", "support-tickets", 1, "[]", "{}")])

    def files() -> list[bytes]:
        return [p.read_bytes() if p.exists() else b"" for p in (log_path, log_path.with_name("requests.db-wal"))]

    before = files()
    seen = run_monitor(busy.config, since=T0, now=T0 + timedelta(hours=3), window_s=3600, read_only=True)
    assert files() == before and seen.purged_captures == 0
    assert [b["requests"] for b in seen.releases[0].series] == [200, 200, 200]
    assert seen.alerts[0]["state"] == "firing"
    with busy.log() as log:
        assert log.read("SELECT COUNT(*) FROM captures")[0][0] == 1
    with RequestLog(log_path, read_only=True) as reader, pytest.raises(sqlite3.OperationalError, match="readonly"):
        reader.append([], [CaptureRow("new-1", "2026-12-01T00:00:00.000Z", "support-tickets", 1, "[]", "{}")])

    assert run_monitor(busy.config, since=T0, now=T0 + timedelta(hours=3), window_s=3600).purged_captures == 1

    # A project that never served: no traffic, and no request log created to say so.
    fresh = monitored_project(tmp_path / "fresh")
    assert run_monitor(fresh.config, read_only=True).releases == []
    assert not (fresh.config.state_dir / "requests.db").exists()
