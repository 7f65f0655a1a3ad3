"""The alert rules evaluated on a timer inside `slmkit serve`, on a thread of their own.

The loop never touches a request: it reads the request log the writer thread fills, and its
results are kept for /metrics (`slmkit_monitor_value`, `slmkit_alert_state`). A failing
evaluation is logged and retried at the next tick; the server keeps answering.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from slmkit.config import ProjectConfig
from slmkit.monitor.alerts import AlertRun, evaluate_alerts
from slmkit.monitor.evaluate import Monitor
from slmkit.monitor.requests import RequestLog

log = logging.getLogger("slmkit.monitor")


class AlertLoop:
    """Runs `evaluate_alerts` every `monitor.evaluate_every_s` seconds until `stop`."""

    def __init__(self, config: ProjectConfig, *, embed: Callable[[Sequence[str]], Any] | None = None) -> None:
        self.config = config
        self.interval = config.monitor.evaluate_every_s
        self.monitor = Monitor(config, embed=embed)
        self.last: AlertRun | None = None
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="slmkit-alerts", daemon=True)

    @property
    def enabled(self) -> bool:
        return self.interval > 0 and bool(self.config.monitor.alerts)

    def start(self) -> AlertLoop:
        if self.enabled:
            self._thread.start()
        return self

    def evaluate_now(self) -> AlertRun:
        """One evaluation on the caller's thread (tests, a manual check)."""
        request_log = RequestLog(self.config.state_dir / "requests.db")
        try:
            self.last = evaluate_alerts(self.config, monitor=self.monitor, request_log=request_log)
        finally:
            request_log.close()
        return self.last

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
        self.monitor.close()

    def _run(self) -> None:
        # The first evaluation waits one interval: the server has just started and has no traffic yet.
        while not self._stop.wait(self.interval):
            try:
                self.evaluate_now()
            except Exception:
                self.failures += 1
                log.exception("evaluating the alert rules failed; trying again in %gs", self.interval)
