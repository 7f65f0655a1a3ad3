"""Review item by item through the command line (the functions the console calls): a release's queue,
verdicts checked against the schema and recorded append-only, the sign-off from them; API keys with
console roles (old keys keep working); `slmkit promote` refused by the checklist. No model needed:
the release and its eval report are recorded by hand."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from slmkit.errors import ServeError
from slmkit.registry import Registry
from slmkit.serve.keys import KeyStore
from tests.conftest import write_project
from tests.eval.test_review import hand_built_report
from tests.test_release_cli import cli, ok

TASK = "support-tickets"
RIGHT = {"category": "shipping", "priority": "high", "order_id": "ORD-654321", "product": "HaloCam 2K"}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project whose v1 and v2 were released from the hand-built report (five items, four to review)."""
    root = write_project(tmp_path / "project", "smollm2-135m-instruct", rows=5)
    report = tmp_path / "report.json"
    report.write_text(json.dumps(hand_built_report()))
    with Registry(root / ".slmkit") as registry:
        digest = registry.store.put_file(report)
        for note in ("first", "second"):
            registry.create_release(
                name=TASK,
                run_id="run-1",
                adapter_digest="a" * 64,
                base_model={"spec": "smollm2-135m-instruct"},
                dataset_version="ds-hand",
                gold_hash="g" * 64,
                eval_report_digest=digest,
                config={},
                note=note,
            )
    return root


def test_the_queue_lists_the_release_items_and_each_verdict_lands_in_the_registry(project: Path) -> None:
    p = str(project)
    queue = ok("review", "queue", "-p", p)
    assert queue.splitlines()[0] == "support-tickets@2: 4 items to review, 0 answered"
    assert [line.split()[0] for line in queue.splitlines()[1:]] == ["T-3", "T-5", "T-4", "T-2"]

    out = ok("review", "answer", "T-2", "--correct", json.dumps(RIGHT), "--note", "shipping, not billing", "-p", p)
    assert "support-tickets@2 item T-2: correct" in out
    ok("review", "answer", "T-3", "--reject", "--reviewer", "rita", "-p", p)
    ok("review", "answer", "T-3", "--accept", "--reviewer", "rita", "-p", p)  # changed her mind: newest counts
    with Registry(project / ".slmkit") as registry:
        verdicts = registry.review_verdicts(TASK, 2)
        assert registry.review_verdicts(TASK, 1) == {}  # verdicts belong to one release
        history = registry.conn.execute("SELECT verdict FROM review_verdicts WHERE item_id = 'T-3' ORDER BY id")
        assert [r[0] for r in history] == ["reject", "accept"]
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            registry.conn.execute("DELETE FROM review_verdicts")
        audit = registry.audit_log(TASK, limit=5, actions=["verdict"])
    assert verdicts["T-2"].correction == RIGHT and verdicts["T-2"].note == "shipping, not billing"
    assert list(verdicts["T-2"].correction) == ["category", "priority", "order_id", "product"]  # schema order
    assert (verdicts["T-3"].verdict, verdicts["T-3"].created_by) == ("accept", "rita")
    assert [e.detail["item"] for e in audit] == ["T-3", "T-3", "T-2"]
    assert "T-3             disagreement, refusal             accept by rita" in ok("review", "queue", "-p", p)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["T-2", "--correct", json.dumps({**RIGHT, "priority": "asap"})], "priority: 'asap' is not one of"),
        (["T-2", "--correct", json.dumps({**RIGHT, "order_id": "123"})], "order_id: '123' does not match"),
        (["T-2", "--correct", '{"category": "billing",'], "not JSON: Expecting property name"),
        (["T-1", "--accept"], "item 'T-1' is not in the review queue of support-tickets@2 (4 items)"),
        (["T-2", "--accept", "--reject"], "give exactly one of --accept, --correct JSON or --reject"),
    ],
)
def test_a_bad_verdict_is_refused_with_its_reason_and_nothing_is_recorded(
    project: Path, args: list[str], message: str
) -> None:
    code, _, err = cli("review", "answer", *args, "-p", str(project))
    assert code == 3 and message in err, err
    with Registry(project / ".slmkit") as registry:
        assert registry.review_verdicts(TASK, 2) == {}


def test_the_signoff_needs_every_item_and_records_the_review_evidence(project: Path) -> None:
    p = str(project)
    ok("review", "answer", "T-2", "--correct", json.dumps(RIGHT), "-p", p)
    code, _, err = cli("review", "signoff", "--reviewer", "rita", "-p", p)
    assert code == 3 and "support-tickets@2: 3 of 4 review items have no verdict yet (T-3, T-5, T-4)" in err
    for item in ("T-3", "T-5", "T-4"):
        ok("review", "answer", item, "--accept", "-p", p)
    out = ok("review", "signoff", "--reviewer", "rita", "-p", p)
    assert "support-tickets@2: review FAILED: 4 items reviewed by rita: 3 ok, 1 wrong, 0 unsure" in out
    with Registry(project / ".slmkit") as registry:
        evidence = registry.get_release(TASK, 2).latest_evidence("review")
    assert evidence is not None and evidence.passed is False and evidence.created_by == "rita"
    assert evidence.detail["wrong"] == ["T-2"] and evidence.detail["corrected"] == {"T-2": RIGHT}
    assert evidence.detail["verdicts"] == {"accept": 3, "correct": 1, "reject": 0}


def test_keys_made_before_roles_keep_working_and_roles_are_checked(tmp_path: Path, project: Path) -> None:
    path = tmp_path / "keys.db"
    with KeyStore(path) as keys:
        _, old_token = keys.add("support-app", ["support-tickets"])
    # Make it a keys.db as slmkit wrote it before roles existed: no roles column, no migration row.
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM schema_migrations WHERE name = '0003_roles'")
    conn.execute("ALTER TABLE keys DROP COLUMN roles")
    conn.commit()
    conn.close()
    with KeyStore(path) as keys:
        old = keys.authenticate(old_token)
        assert old is not None and old.roles == () and old.allows("support-tickets@2")
        assert not old.has_role("reviewer")
        new, _ = keys.add("alice", roles=["reviewer", "releaser"])
        assert new.has_role("releaser") and keys.list()[1].roles == ("reviewer", "releaser")
        with pytest.raises(ServeError, match="unknown role"):
            keys.add("mallory", roles=["admin"])
        assert keys.revoke("alice").has_role("reviewer") is False
    out = ok("serve", "keys", "add", "rev", "--role", "reviewer", "-p", str(project))
    assert "console roles: reviewer" in out
    assert "reviewer" in ok("serve", "keys", "list", "-p", str(project))


def test_promote_is_refused_when_the_release_checklist_blocks_it(project: Path) -> None:
    code, _, err = cli("promote", "1", "-m", "back to v1", "-p", str(project))
    assert code == 9 and "support-tickets@1 cannot move support-tickets@production" in err
    with Registry(project / ".slmkit") as registry:
        assert registry.aliases(TASK)["production"] == 2
