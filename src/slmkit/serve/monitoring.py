"""What `slmkit serve` runs for monitoring, beside the requests: the log writer and the alert timer.

Kept in one place so the serving code only calls `start_monitoring` and `close`: the signals,
statistics, alert states and capture all live in `slmkit.monitor`, which never imports serve.
"""

from __future__ import annotations

from dataclasses import dataclass

from slmkit.config import ProjectConfig
from slmkit.monitor import RequestLog
from slmkit.monitor.loop import AlertLoop
from slmkit.monitor.prometheus import MonitorCollector
from slmkit.monitor.signals import SignalSink
from slmkit.serve.recorder import Recorder


@dataclass
class Monitoring:
    recorder: Recorder  # the request log writer: signals, embeddings, capture
    alerts: AlertLoop  # the alert rules on a timer
    collector: MonitorCollector  # their values and states on /metrics

    def lines(self) -> list[str]:
        """What the startup banner says about monitoring (capture above all: it keeps request text)."""
        monitor = self.alerts.config.monitor
        capture = monitor.capture
        out = []
        if capture.share > 0:
            out.append(
                f"  capture: ON, {capture.share:.0%} of answered requests kept for review, PII-redacted, "
                f"deleted after {capture.retention_days:g} days (monitor.capture)"
            )
        else:
            out.append("  capture: off (no request text is kept; monitor.capture.share turns it on)")
        embeddings = (
            "input embeddings on (int8, of the redacted input)" if monitor.embeddings else "input embeddings off"
        )
        if self.alerts.enabled:
            rules = f"{len(monitor.alerts)} alert rule(s) evaluated every {monitor.evaluate_every_s:g}s"
        elif monitor.alerts:
            rules = f"{len(monitor.alerts)} alert rule(s), evaluated by `slmkit monitor alerts` only"
        else:
            rules = "no alert rules (monitor.alerts)"
        hook = f"; webhook {monitor.webhook.url}" if monitor.webhook else ""
        out.append(f"  monitoring: {embeddings}; {rules}{hook}")
        return out

    def close(self) -> None:
        self.alerts.stop()
        self.recorder.close()


def start_monitoring(config: ProjectConfig) -> Monitoring:
    embed = None
    if config.monitor.embeddings:
        from slmkit.monitor.embedding import InputEmbedder

        # One model for the writer and the alert timer (loads on first use), one core each time.
        embed = InputEmbedder(threads=1)
    sink = SignalSink(config, RequestLog(config.state_dir / "requests.db"), embed=embed)
    alerts = AlertLoop(config, embed=embed).start()
    return Monitoring(Recorder(sink), alerts, MonitorCollector(alerts))
