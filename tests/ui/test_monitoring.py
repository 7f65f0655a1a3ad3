"""The console's monitoring page in a real browser, on traffic a real `slmkit serve` logged for the tiny
model: the plots and the span's numbers, an alert the server's own timer fired (with its evidence) seen
by a read-only visitor, the page following new traffic, and viewing it leaving requests.db as it was.
And the alert rules' checks in the checklist the console shows and `promote` obeys."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import openai
import yaml
from playwright.sync_api import expect

from slmkit.config import load_config
from slmkit.monitor.alerts import alert_states
from slmkit.monitor.requests import CaptureRow, RequestLog
from slmkit.registry import Registry
from slmkit.ui import start_console
from tests.monitor.conftest import example_inputs
from tests.test_release_cli import edit_config
from tests.ui.browser import needs_browser, screenshot
from tests.ui.helpers import add_key, log_in, serve, submit

pytestmark = needs_browser
TASK = "support-tickets"
REFUSALS = "many refusals"  # the example's rule: refusal_rate > 0.2 over 1h, judged from 50 requests


def wait_for(check: Callable[[], Any], timeout_s: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (found := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)
    return found


def firing(project: Path) -> list[dict[str, Any]]:
    with RequestLog(project / ".slmkit" / "requests.db", read_only=True) as log:
        return [a for a in alert_states(log) if a["state"] == "firing"]


def log_files(project: Path) -> dict[str, str]:
    """sha256 of requests.db and its write-ahead log (the -shm index is a reader's scratch space)."""
    out = {}
    for suffix in ("", "-wal"):
        path = project / ".slmkit" / f"requests.db{suffix}"
        out[path.name] = hashlib.sha256(path.read_bytes() if path.exists() else b"").hexdigest()
    return out


def open_monitoring(page, query: str) -> None:  # type: ignore[no-untyped-def]
    """Go to the page and wait for the span's numbers (a first view may say it is computing, then reload)."""
    page.goto(f"/monitoring?{query}")
    expect(page.locator("#summary")).to_be_visible(timeout=60_000)


def test_the_monitoring_page_shows_real_traffic_and_a_firing_alert_to_a_visitor(
    browser, project: Path, shots: Path
) -> None:
    edit_config(project, monitor__evaluate_every_s=1, monitor__capture={"share": 1.0, "retention_days": 30})
    server, url = serve(project)
    try:
        client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)

        def ask(texts: list[str]) -> None:
            for text in texts:
                client.chat.completions.create(model=TASK, messages=[{"role": "user", "content": text}])

        ask(example_inputs(50))  # the tiny model refuses every one (a valid refusal, decoded under the schema)
        (alert,) = wait_for(lambda: firing(project))  # the server's alert timer judged it
        assert (alert["rule"], alert["release"]) == (REFUSALS, f"{TASK}@2")
        with RequestLog(project / ".slmkit" / "requests.db", read_only=True) as log:
            refused = log.read("SELECT AVG(refused) FROM requests")[0][0]
        assert refused > 0.2

        with start_console(load_config(project, check_files=False)) as console:
            context = browser.new_context(base_url=console.url, viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto("/")
            alerts_card = page.locator(".card", has_text="alerts").inner_text()
            assert "1 firing" in alerts_card and f"{REFUSALS} ({TASK}@2)" in alerts_card
            page.locator(".card", has_text="alerts").get_by_role("link", name="monitoring").click()
            expect(page.locator("#summary")).to_be_visible(timeout=60_000)  # the default span: 24 h
            assert page.locator("#choices b").first.inner_text() == "24 h"
            open_monitoring(page, "span=1h")
            assert "read-only" in page.locator("header .who").inner_text()
            assert page.locator("form[method=post], script").count() == 0
            assert page.locator('meta[http-equiv="refresh"]').get_attribute("content") == "30"

            row = page.locator("#alerts tr[data-state=firing]")
            assert REFUSALS in row.inner_text() and f"{TASK}@2" in row.inner_text()
            evidence = row.locator("td").last.inner_text()
            assert re.search(
                rf"refusal_rate {refused:.4g} \(alert when > 0\.2\) on 50 requests in .* UTC \(1h\)", evidence
            )
            event = page.locator("#events tr", has_text=REFUSALS)
            assert "inactive → firing" in event.inner_text()
            # Rules that need more traffic say why they were not judged.
            assert "not judged: 50 requests < min_requests 100" in page.locator("#alerts").inner_text()

            summary = page.locator("#summary")
            assert f"{TASK}@2" in summary.locator("thead").inner_text()
            assert summary.locator("tbody tr").first.inner_text().split() == ["requests", "50"]
            assert re.search(rf"refusal_rate\s+{refused:.3f}", summary.inner_text())
            for chart in ("series-requests", "series-schema_valid_rate", "series-latency_p95_ms"):
                assert page.locator(f'svg[data-chart="{chart}"] polyline').count() == 1, chart
            assert page.locator(f"#release-{TASK}-2 h3", has_text="Confidence").count() == 1
            screenshot(page, shots, "monitoring", readme=True)

            # Live: new traffic shows on a reload (the page reloads itself every 30 s).
            ask(example_inputs(56)[50:])
            for _ in range(30):
                page.reload()
                if summary.locator("tbody tr").first.inner_text().split() == ["requests", "56"]:
                    break
                time.sleep(1)
            assert summary.locator("tbody tr").first.inner_text().split() == ["requests", "56"]
            context.close()
    finally:
        server.terminate()
        server.wait(timeout=30)

    # Viewing the page writes nothing: not even the capture past its retention (which `slmkit monitor`
    # and the server delete) goes, and the log's bytes stay as they were.
    expired = (datetime.now(UTC) - timedelta(days=60)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    with RequestLog(project / ".slmkit" / "requests.db") as log:
        log.append([], [CaptureRow("old-1", expired, TASK, 2, '[{"role": "user", "content": "x"}]', "{}")])
        captures = log.read("SELECT COUNT(*) FROM captures")[0][0]
    assert captures == 57
    before = log_files(project)
    with start_console(load_config(project, check_files=False)) as console:
        context = browser.new_context(base_url=console.url)
        page = context.new_page()
        for query in ("span=1h", "span=6h", "span=24h", "span=24h&release=2"):
            open_monitoring(page, query)
        context.close()
    assert log_files(project) == before
    with RequestLog(project / ".slmkit" / "requests.db", read_only=True) as log:
        assert log.read("SELECT COUNT(*) FROM captures WHERE request_id = 'old-1'")[0][0] == 1


def test_the_checklist_and_promote_include_the_alert_rules_checks(browser, project: Path) -> None:
    """The console's checklist is the one `promote` obeys: a rule that cannot evaluate for a release fails
    it, and a promotion blocked on it is refused with the rule and the reason named."""
    edit_config(project, release__blocking=["schema", "gold_locked", "alerts"])
    token = add_key(project, "erin", "releaser")

    def promote_v1(page) -> str:  # type: ignore[no-untyped-def]
        page.goto("/releases")
        form = page.locator("tbody tr", has_text=f"{TASK}@1").locator("form")
        form.locator("input[name=reason]").fill("back to v1")
        submit(page, form.get_by_role("button", name="promote to production"))
        return page.locator(".flash").inner_text()

    # The releases were evaluated on 8 gold items: too few for the two drift rules' tests ever to call drift.
    with start_console(load_config(project, check_files=False)) as console:
        context = browser.new_context(base_url=console.url)
        page = context.new_page()
        page.goto("/")
        item = page.locator("tr", has_text="monitoring alerts defined").inner_text()
        assert re.search(r"FAIL\s+monitoring alerts defined\s+2 of 5 rule\(s\) cannot evaluate", item), item
        assert "label_drift: only 8 labelled eval answers; a drift test needs at least 30" in item
        assert "confidence_drift: only 8 eval confidences" in item and "blocking" in item
        log_in(page, token)
        refused = promote_v1(page)
        assert f"{TASK}@1 cannot move {TASK}@production: monitoring alerts defined: fail" in refused
        assert "label_drift: only 8 labelled eval answers" in refused
        context.close()
    with Registry(project / ".slmkit") as registry:
        assert registry.aliases(TASK)["production"] == 2

    # Without the drift rules every rule evaluates: the item passes and the same promotion goes through.
    config = yaml.safe_load((project / "slmkit.yaml").read_text())
    kept = [r for r in config["monitor"]["alerts"] if "drift" not in r["metric"]]
    edit_config(project, monitor__alerts=kept)
    with start_console(load_config(project, check_files=False)) as console:
        context = browser.new_context(base_url=console.url)
        page = context.new_page()
        page.goto("/")
        item = page.locator("tr", has_text="monitoring alerts defined").inner_text()
        assert re.search(r"PASS\s+monitoring alerts defined\s+3 rule\(s\) evaluate: answers break the schema", item)
        log_in(page, token)
        assert f"{TASK}@production: 2 -> 1" in promote_v1(page)
        context.close()
    with Registry(project / ".slmkit") as registry:
        assert registry.aliases(TASK)["production"] == 1
