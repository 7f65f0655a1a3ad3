"""The monitoring page: per release, the request log's plots, drift tests and alert states, live.

Everything on it comes from slmkit.monitor: `run_monitor(..., read_only=True)` for the span's
table, time series, label mix, confidences and drift tests; `alert_states` / `alert_events` for the
current state of each rule per release and the latest changes with their evidence; monitor.page's
sections draw them. Viewing it changes nothing on disk: the request log is opened read-only (no
capture purge, no migration) and no drift reference is built.

Live without script: the page reloads itself (a meta refresh, every 30 s unless asked otherwise).
Judging a day over a busy log takes seconds (a million requests), so each (span, release) result
is kept with the log's last row id when it was computed (`Views`): a view is served from it while
the log has not grown and it is under a minute old, or while it is under 5 s old (many viewers,
one computation). Otherwise the kept result is shown, marked as updating, while one background
thread computes the next; with nothing kept yet the page waits up to 2 s, then says it is
computing and reloads. The alert states are read on every view: they are never behind.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from slmkit.charts import CHART_CSS, esc
from slmkit.config import ProjectConfig
from slmkit.errors import SlmkitError
from slmkit.ui.context import Context
from slmkit.ui.layout import page

log = logging.getLogger("slmkit.ui")

# span -> (seconds, bucket width of the time series and of the last window's drift tests)
SPANS = {"1h": (3600.0, 300.0), "6h": (6 * 3600.0, 900.0), "24h": (86400.0, 3600.0)}
REFRESHES = (10, 30, 60, 0)  # seconds between reloads; 0: off
EVENTS_SHOWN = 20
SHARE_S = 5.0  # a result this young is served even if the log grew
MAX_AGE_S = 60.0  # a result this old is recomputed even if the log did not grow (the span moved on)
COLD_WAIT_S = 2.0  # how long a first view waits for its computation before saying it is computing


@dataclass(frozen=True)
class View:
    """One computed (span, release) result, and what it was computed from."""

    result: Any  # slmkit.monitor.run.MonitorResult
    last_id: int  # the request log's last row id when the computation started
    computed_at: float  # time.monotonic() when it finished
    seconds: float  # how long it took


class Views:
    """Results per (span, release), computed on one background thread; see the module's docstring."""

    def __init__(self, config: ProjectConfig) -> None:
        self.config = config
        self._views: dict[tuple[str, str | None], View] = {}
        self._pending: dict[tuple[str, str | None], Future[View]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="slmkit-ui-monitor")

    def get(self, span: str, ref: str | None, last_id: int) -> tuple[View | None, bool]:
        """(the result to show, or None while a first one computes; whether a newer one is on its way)."""
        key = (span, ref)
        with self._lock:
            view = self._views.get(key)
            if view is not None and _fresh(view, last_id):
                return view, False
            future = self._pending.get(key)
            if future is None:
                future = self._pool.submit(self._compute, key, last_id)
                self._pending[key] = future
                future.add_done_callback(lambda _: self._done(key))
        if view is not None:
            return view, True
        try:
            return future.result(timeout=COLD_WAIT_S), False
        except FutureTimeout:
            return None, True

    def _compute(self, key: tuple[str, str | None], last_id: int) -> View:
        from slmkit.monitor.run import run_monitor

        span, ref = key
        seconds, window_s = SPANS[span]
        began = time.monotonic()
        now = datetime.now(UTC)
        result = run_monitor(
            self.config, ref=ref, since=now - timedelta(seconds=seconds), window_s=window_s, now=now, read_only=True
        )
        view = View(result, last_id, time.monotonic(), time.monotonic() - began)
        with self._lock:
            self._views[key] = view
        return view

    def _done(self, key: tuple[str, str | None]) -> None:
        with self._lock:
            future = self._pending.pop(key, None)
        if future is not None and future.exception() is not None:  # shown to the first viewer; logged here
            log.warning("monitoring %s: %s", key, future.exception())

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _fresh(view: View, last_id: int) -> bool:
    age = time.monotonic() - view.computed_at
    return age < SHARE_S or (view.last_id == last_id and age < MAX_AGE_S)


def log_state(config: ProjectConfig) -> tuple[int, list[dict[str, Any]], list[dict[str, Any]]]:
    """The request log's last row id, every alert state and the latest events, read without writing."""
    from slmkit.monitor.alerts import alert_events, alert_states
    from slmkit.monitor.requests import RequestLog

    path = config.state_dir / "requests.db"
    if not path.exists():
        return 0, [], []
    with RequestLog(path, read_only=True) as request_log:
        last_id = int(request_log.read("SELECT IFNULL(MAX(id), 0) FROM requests")[0][0])
        return last_id, alert_states(request_log), alert_events(request_log, limit=EVENTS_SHOWN)


def monitoring(ctx: Context, views: Views, span: str, release: str | None, refresh: int) -> str:
    from slmkit.monitor.page import SECTION_CSS, render_sections

    if span not in SPANS:
        raise SlmkitError(f"span must be one of {', '.join(SPANS)} (got {span!r})")
    if refresh not in REFRESHES:
        raise SlmkitError(f"refresh must be one of {', '.join(map(str, REFRESHES))} seconds (got {refresh})")
    ref = None
    if release:  # 3, v3, an alias or name@3, as the command line takes them
        name = ctx.config.task.name
        ref = ctx.registry.resolve(release if "@" in release else f"{name}@{release}").ref
    last_id, alerts, events = log_state(ctx.config)
    view, updating = views.get(span, ref, last_id)
    if ref is not None:
        alerts = [a for a in alerts if a["release"] == ref]
        events = [e for e in events if e["release"] == ref]
    parts = [f"<style>{SECTION_CSS}{CHART_CSS}</style>", _choices(ctx, span, ref, refresh, view)]
    if view is None:
        parts.append(
            f'<p class="flash done" id="computing">Computing the last {esc(span)} over the request log '
            f"(up to request #{last_id:,}); this page reloads when it is ready.</p>"
        )
        return page("Monitoring", "".join(parts), ctx.visitor, active="/monitoring", refresh_s=2)
    result = dataclasses.replace(view.result, alerts=alerts, events=events)
    parts.append(_status(view, updating, last_id))
    parts.append(render_sections(result))
    return page("Monitoring", "".join(parts), ctx.visitor, active="/monitoring", refresh_s=refresh or None)


def _choices(ctx: Context, span: str, ref: str | None, refresh: int, view: View | None) -> str:
    """Links that pick the span, the release and how often the page reloads."""

    def link(label: str, on: bool, **query: Any) -> str:
        chosen = {"span": span, "release": ref.rpartition("@")[2] if ref else None, "refresh": refresh} | query
        href = "/monitoring?" + urlencode({k: v for k, v in chosen.items() if v is not None})
        return f"<b>{esc(label)}</b>" if on else f'<a href="{esc(href)}">{esc(label)}</a>'

    served = [r.release for r in view.result.releases] if view is not None else []
    if ref is not None and ref not in served:
        served.append(ref)
    spans = " · ".join(link(s.replace("h", " h"), s == span, span=s) for s in SPANS)
    releases = " · ".join(
        [link("all that served", ref is None, release=None)]
        + [link(r, r == ref, release=r.rpartition("@")[2]) for r in served]
    )
    reloads = " · ".join(link(f"{r} s" if r else "off", r == refresh, refresh=r) for r in REFRESHES)
    return (
        f'<p id="choices">span: {spans}<br>release: {releases}<br>reloads every: {reloads} '
        f'<span class="muted">(alias {esc(ctx.config.release.alias)} of {esc(ctx.config.task.name)}; '
        "times in UTC)</span></p>"
    )


def _status(view: View, updating: bool, last_id: int) -> str:
    result = view.result
    age = time.monotonic() - view.computed_at
    text = (
        f"{result.since:%Y-%m-%d %H:%M} → {result.until:%H:%M:%S} UTC, over requests up to #{view.last_id:,} "
        f"(the log is at #{last_id:,}); computed {age:.0f} s ago in {view.seconds:.2f} s. "
        "Alert states are read on every view."
    )
    if updating:
        text += " Updating: the next reload shows the newer numbers."
    return f'<p class="muted" id="computed">{esc(text)}</p>'
