"""The web console in a real browser (Playwright driving Debian's chromium) on two real releases of the
tiny model: every page renders (and is screenshotted), a reviewer's verdicts land in the registry, a
rollback clicked in the page moves the alias and a running `slmkit serve` follows, a read-only visitor
and a cross-origin or token-less POST cannot act."""

from __future__ import annotations

import http.server
import re
import subprocess
import sys
import threading
from pathlib import Path

import openai

from slmkit.registry import Registry
from tests.test_release_cli import ok
from tests.ui.browser import needs_browser, screenshot
from tests.ui.helpers import add_key, log_in, serve, submit

pytestmark = needs_browser
TASK = "support-tickets"


def test_every_page_renders_for_a_visitor_and_is_screenshotted(page, project: Path, shots: Path) -> None:
    with Registry(project / ".slmkit") as registry:
        second = registry.get_release(TASK, 2)
    page.goto("/")
    assert page.locator("h2", has_text="production: support-tickets@2").is_visible()
    checklist = page.locator("table").nth(1).inner_text()
    for title in ("schema validation passes", "PII removed", "eval set locked", "rollback tested"):
        assert re.search(rf"PASS\s+{title}", checklist), checklist
    assert re.search(r"MISSING\s+human review of edge cases signed off", checklist)
    assert "category" in page.locator("h3:text('Output schema') + table").inner_text()
    screenshot(page, shots, "overview", readme=True)

    page.goto(f"/datasets/{second.dataset_version}")
    card = page.frame_locator("iframe.card-frame")
    assert card.locator("h2", has_text="PII").first.is_visible()  # the data card itself, in the page
    screenshot(page, shots, "dataset", readme=True)

    page.goto("/runs")
    assert page.locator("tbody tr").count() == 2
    page.goto(f"/runs/{second.run_id}")
    assert page.locator('svg[data-chart="loss"] polyline.s-train').count() == 1
    screenshot(page, shots, "run", readme=True)

    page.goto(f"/runs/{second.run_id}/eval")
    header = page.locator("h2:text('Base vs adapter vs production') + table thead").inner_text()
    assert "base" in header and "adapter" in header and "production (support-tickets@1)" in header
    assert page.locator("h2", has_text="Regression list vs support-tickets@1").is_visible()
    assert page.locator('svg[data-chart="sides"]').count() == 1
    screenshot(page, shots, "eval", readme=True)

    page.goto("/releases")
    assert [c.strip() for c in page.locator("tbody tr td:first-child").all_inner_texts()] == [
        "support-tickets@2",
        "support-tickets@1",
    ]
    assert page.locator("tbody tr").first.locator(".pill").inner_text() == "production"
    assert page.locator("form[method=post]").count() == 0  # read-only: nothing to click
    screenshot(page, shots, "releases")
    submit(page, page.get_by_role("button", name="diff"))
    assert "metrics (adapter)" in page.locator("pre").inner_text()
    page.goto("/releases/2")
    assert "rehearsal         PASS" in page.locator("pre").inner_text()
    page.goto("/audit")
    assert page.locator("tbody tr", has_text="release").count() >= 2
    screenshot(page, shots, "audit", readme=True)

    page.goto("/review")
    assert page.locator("div.item").count() == 8  # the tiny model disagrees with every gold item
    assert page.locator("form[method=post]").count() == 0
    screenshot(page, shots, "review-read-only")


def test_a_reviewer_answers_items_in_the_page_and_the_verdicts_land_in_the_registry(
    page, project: Path, shots: Path
) -> None:
    log_in(page, add_key(project, "alice", "reviewer"))
    page.goto("/review")
    items = page.locator("div.item")
    ids = [items.nth(i).get_attribute("data-item") for i in range(items.count())]
    assert len(ids) == 8

    def item(item_id: str):  # type: ignore[no-untyped-def]
        return page.locator(f'div.item[data-item="{item_id}"]')

    # A correction the schema refuses is named next to its item and nothing is recorded.
    bad = item(ids[0])
    bad.locator('select[name="field.category"]').select_option('"billing"')
    bad.locator('input[name="field.order_id"]').fill("ORD-12")
    submit(page, bad.get_by_role("button", name="correct"))
    assert "order_id: 'ORD-12' does not match" in item(ids[0]).locator(".flash.error").inner_text()
    with Registry(project / ".slmkit") as registry:
        assert registry.review_verdicts(TASK, 2) == {}
    screenshot(page, shots, "review-correction-refused", readme=True)

    fixed = item(ids[0])
    fixed.locator('select[name="field.category"]').select_option('"billing"')
    fixed.locator('select[name="field.priority"]').select_option('"high"')
    fixed.locator('input[name="field.order_id"]').fill("ORD-123456")
    fixed.locator('select[name="field.product"]').select_option("null")
    submit(page, fixed.get_by_role("button", name="correct"))
    item(ids[1]).locator("form", has=page.get_by_role("button", name="reject")).locator("input[name=note]").fill(
        "wrong queue"
    )
    submit(page, item(ids[1]).get_by_role("button", name="reject"))
    submit(page, page.get_by_role("button", name="sign off"))  # two of eight answered: refused
    assert "6 of 8 review items have no verdict yet" in page.locator(".flash.error").inner_text()
    for item_id in ids[2:]:
        submit(page, item(item_id).get_by_role("button", name="accept"))
    assert page.locator("[data-verdict=accept]").count() == 6
    screenshot(page, shots, "review", readme=True)
    submit(page, page.get_by_role("button", name="sign off"))
    assert "review FAILED: 8 items reviewed by alice@console: 6 ok, 2 wrong" in page.locator(".flash.done").inner_text()

    with Registry(project / ".slmkit") as registry:
        verdicts = registry.review_verdicts(TASK, 2)
        evidence = registry.get_release(TASK, 2).latest_evidence("review")
        audit = registry.audit_log(TASK, limit=20, actions=["verdict"])
    assert verdicts[ids[0]].verdict == "correct" and verdicts[ids[0]].created_by == "alice@console"
    assert verdicts[ids[0]].correction == {
        "category": "billing",
        "priority": "high",
        "order_id": "ORD-123456",
        "product": None,
    }
    assert (verdicts[ids[1]].verdict, verdicts[ids[1]].note) == ("reject", "wrong queue")
    assert {v.verdict for i, v in verdicts.items() if i in ids[2:]} == {"accept"}
    assert evidence is not None and evidence.passed is False and evidence.created_by == "alice@console"
    assert evidence.detail["corrected"] == {ids[0]: verdicts[ids[0]].correction}
    assert len(audit) == 8 and all(e.actor == "alice@console" for e in audit)
    # The command line reads the same record: the queue and the checklist show the verdicts.
    assert re.search(
        rf"{re.escape(ids[0])}\s+disagreement[^\n]*correct by alice@console", ok("review", "queue", "-p", str(project))
    )
    checked = subprocess.run(
        [sys.executable, "-m", "slmkit", "check", "-p", str(project)], capture_output=True, text=True, check=False
    ).stdout
    assert re.search(r"FAIL\s+human review of edge cases signed off\s+8 items reviewed by alice@console", checked)


def test_a_rollback_clicked_in_the_page_moves_the_alias_and_a_running_server_follows(
    page, project: Path, shots: Path
) -> None:
    token = add_key(project, "bob", "releaser")
    server, url = serve(project)
    try:
        client = openai.OpenAI(base_url=url, api_key=token, max_retries=0)

        def served() -> str:
            reply = client.chat.completions.create(model=TASK, messages=[{"role": "user", "content": "hi"}])
            return reply.model_extra["slmkit"]["release"]

        assert served() == f"{TASK}@2"
        log_in(page, token)
        page.goto("/releases")
        screenshot(page, shots, "releases-releaser", readme=True)
        rollback = page.locator("form", has=page.get_by_role("button", name="roll back"))
        rollback.locator("input[name=reason]").fill("label accuracy dropped on returns")
        submit(page, rollback.get_by_role("button", name="roll back"))
        assert "support-tickets@production: 2 -> 1" in page.locator(".flash.done").inner_text()
        assert page.locator("tbody tr", has_text="support-tickets@1").locator(".pill").inner_text() == "production"
        assert served() == f"{TASK}@1"  # the running server follows without a restart

        with Registry(project / ".slmkit") as registry:
            assert registry.aliases(TASK)["production"] == 1
            moved = registry.audit_log(TASK, limit=2, actions=["rollback"])[0]
        assert (moved.actor, moved.detail["reason"], moved.detail["from"], moved.detail["to"]) == (
            "bob@console",
            "label accuracy dropped on returns",
            2,
            1,
        )
        # Forward again: promote v2 (its checklist's blocking items pass), with a reason.
        promote = page.locator("tbody tr", has_text="support-tickets@2").locator("form")
        promote.locator("input[name=reason]").fill("fixed upstream; v2 is fine")
        submit(page, promote.get_by_role("button", name="promote to production"))
        assert "support-tickets@production: 1 -> 2" in page.locator(".flash.done").inner_text()
        assert served() == f"{TASK}@2"
        assert "bob@console" in page.goto("/audit").text() and "fixed upstream; v2 is fine" in page.content()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_read_only_visitor_and_a_key_without_the_role_cannot_act(page, project: Path, console) -> None:
    origin = {"Origin": console.url}
    page.goto("/releases")
    assert page.get_by_role("button", name="roll back").count() == 0
    refused = page.request.post("/actions/rollback", form={"reason": "x"}, headers=origin)
    assert refused.status == 403 and "log in with a key that holds the releaser role" in refused.text()
    page.goto("/review")
    assert page.get_by_role("button", name="accept").count() == 0
    assert page.request.post("/actions/review/2/signoff", form={}, headers=origin).status == 403
    missing, garbled = page.request.get("/releases/9"), page.request.get("/runs?page=x")
    assert missing.status == 404 and "support-tickets has no version 9; versions: 1, 2" in missing.text()
    assert garbled.status == 400 and "page is not valid" in garbled.text()

    log_in(page, add_key(project, "carol", "reviewer"))  # a reviewer, not a releaser
    page.goto("/releases")
    assert page.get_by_role("button", name="roll back").count() == 0
    csrf = page.locator("form[action='/logout'] input[name=csrf]").get_attribute("value")
    refused = page.request.post("/actions/rollback", form={"reason": "x", "csrf": csrf}, headers=origin)
    assert refused.status == 403 and "does not hold the releaser role" in refused.text()
    with Registry(project / ".slmkit") as registry:
        assert registry.aliases(TASK)["production"] == 2
        assert registry.audit_log(TASK, limit=1)[0].action != "rollback"


def test_a_post_without_the_token_or_from_another_origin_is_refused(
    page, project: Path, console, tmp_path: Path
) -> None:
    log_in(page, add_key(project, "dave", "releaser"))
    csrf = page.locator("form[action='/logout'] input[name=csrf]").get_attribute("value")
    origin = {"Origin": console.url}
    no_token = page.request.post("/actions/rollback", form={"reason": "x"}, headers=origin)
    assert no_token.status == 403 and "CSRF token is missing or wrong" in no_token.text()
    wrong_token = page.request.post("/actions/rollback", form={"reason": "x", "csrf": csrf[::-1]}, headers=origin)
    assert wrong_token.status == 403
    elsewhere = page.request.post(
        "/actions/rollback", form={"reason": "x", "csrf": csrf}, headers={"Origin": "http://evil.example"}
    )
    assert elsewhere.status == 403 and "cross-origin request refused" in elsewhere.text()
    assert page.request.get("/actions/rollback").status == 405  # never an action over GET
    rebinding = page.request.get("/", headers={"Host": "evil.example:80"})
    assert rebinding.status == 400

    # A page on another origin (another port of 127.0.0.1: same site, so the SameSite cookie goes
    # along) submits a form to the console in the same browser: the Origin check refuses it.
    (tmp_path / "attack.html").write_text(
        f'<form method="post" action="{console.url}/actions/rollback"><input name="reason" value="pwned">'
        f'<input name="csrf" value="guess"><button>win a prize</button></form>'
    )
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path))  # noqa: E731
    attacker = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=attacker.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://127.0.0.1:{attacker.server_address[1]}/attack.html")
        with page.expect_response(lambda r: "/actions/rollback" in r.url) as answer:
            page.get_by_role("button", name="win a prize").click()
        assert answer.value.status == 403 and "cross-origin request refused" in answer.value.text()
    finally:
        attacker.shutdown()
    with Registry(project / ".slmkit") as registry:
        assert registry.aliases(TASK)["production"] == 2
        assert not registry.audit_log(TASK, limit=10, actions=["rollback"])


def test_a_reviewer_answers_the_production_review_queue_in_the_page(page, project: Path, shots: Path) -> None:
    from slmkit.config import TrafficReviewConfig
    from slmkit.monitor.queue import build_queue, queue_items
    from slmkit.monitor.requests import RequestLog
    from tests.monitor.test_traffic_queue import capture

    with RequestLog(project / ".slmkit" / "requests.db") as log:
        capture(log, 3, confidence=lambda n: 0.3 + n / 10)
        build_queue(log, TrafficReviewConfig(size=3, random=1.0, low_confidence=0, flagged=0, refused=0))
    page.goto("/review/traffic")
    assert page.locator("div.item").count() == 3 and page.locator("form[method=post]").count() == 0  # read-only

    log_in(page, add_key(project, "bob", "reviewer"))
    page.goto("/review/traffic")
    items = page.locator("div.item")
    ids = [items.nth(i).get_attribute("data-item") for i in range(items.count())]

    def item(item_id: str):  # type: ignore[no-untyped-def]
        return page.locator(f'div.item[data-item="{item_id}"]')

    first = item(ids[0])
    first.locator('select[name="field.category"]').select_option('"shipping"')
    first.locator('input[name="field.order_id"]').fill("ORD-9")
    submit(page, first.get_by_role("button", name="correct"))
    assert "order_id: 'ORD-9' does not match" in item(ids[0]).locator(".flash.error").inner_text()
    fixed = item(ids[0])
    fixed.locator('select[name="field.category"]').select_option('"shipping"')
    fixed.locator('input[name="field.order_id"]').fill("ORD-900001")
    submit(page, fixed.get_by_role("button", name="correct"))
    submit(page, item(ids[1]).get_by_role("button", name="accept"))
    assert page.locator("div.item").count() == 1  # answered items leave the page
    assert "Production accuracy, support-tickets@1: answers right 1/2" in page.locator(".estimate").inner_text()
    screenshot(page, shots, "review-traffic", readme=True)

    with RequestLog(project / ".slmkit" / "requests.db") as log:
        answered = {i.id: i.current for i in queue_items(log) if i.current is not None}
    assert answered[ids[0]].verdict == "correct" and answered[ids[0]].reviewer == "bob@console"
    assert answered[ids[0]].correction["order_id"] == "ORD-900001" and answered[ids[0]].via == "console"
    reviewed = [line for line in (project / ".slmkit" / "reviewed.jsonl").read_text().splitlines() if line]
    assert len(reviewed) == 2
