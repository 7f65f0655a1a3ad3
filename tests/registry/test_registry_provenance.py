"""Migration 0003 (provenance, evidence), the production checklist on hand-built evidence, and
`releases show` / `diff` of hand-built records. No model is loaded here."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slmkit.errors import RegistryError, ReleaseBlocked
from slmkit.registry import NewEvidence, Registry, Release, db
from slmkit.registry.checklist import RuleCheck, release_checklist
from slmkit.registry.describe import diff_lines, release_lines
from slmkit.registry.store import hash_file

ALL_ITEMS = ["schema", "pii", "gold_locked", "rollback", "latency", "review", "alerts"]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(tmp_path / ".slmkit")
    yield reg
    reg.close()


def pii_report(*, enabled: bool = True, configured: int = 2, checked: int = 2, survived: int = 0) -> dict[str, Any]:
    """The shape `slmkit data build` writes into report.json (only the parts the checklist reads)."""
    return {
        "stages": [{"stage": "pii", "in": 10, "out": 10, "rejected": 0}] if enabled else [],
        "pii": {
            "enabled": enabled,
            "rows_with_pii": 3,
            "by_type": {"EMAIL": 2, "PHONE": 1},
            "canaries": {"configured": configured, "checked": checked, "survived": survived},
        },
        "duplicates": {"exact": {"clusters": 1, "removed": 1}},
    }


def eval_report(gates: list[dict[str, Any]], schema_validity: float = 0.96) -> dict[str, Any]:
    return {
        "kind": "slmkit.eval_report",
        "items": 25,
        "gates": gates,
        "metrics": {"adapter": {"schema_validity": {"value": schema_validity}}},
        "predictions": [],
    }


SCHEMA_GATE = {"gate": "schema_validity >= 0.95", "metric": "schema_validity", "passed": True, "threshold": 0.95}


def make_release(
    registry: Registry,
    tmp_path: Path,
    *,
    data_report: dict[str, Any] | None = None,
    report: dict[str, Any] | None = None,
    evidence: list[NewEvidence] | None = None,
    provenance: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
) -> Release:
    """A dataset (report.json + gold.jsonl) and an eval report stored for real, and a release of them."""
    count = len(registry.list_releases())
    folder = tmp_path / f"ds-{count}"
    folder.mkdir()
    (folder / "gold.jsonl").write_text('{"id": "g1"}\n')
    (folder / "report.json").write_text(json.dumps(data_report if data_report is not None else pii_report()))
    digest = registry.store.put_dir(folder)
    gold_hash = hash_file(folder / "gold.jsonl")
    registry.record_dataset(f"ds-{digest[:12]}", "tickets", digest, gold_hash, {"train": 10, "gold": 1}, {})
    registry.lock_gold("tickets", gold_hash, f"ds-{digest[:12]}")
    report_file = tmp_path / f"report-{count}.json"
    report_file.write_text(json.dumps(report if report is not None else eval_report([SCHEMA_GATE])))
    report_digest = registry.store.put_file(report_file)
    return registry.create_release(
        name="tickets",
        run_id=f"run-{count}",
        adapter_digest="a" * 64,
        base_model={"spec": "tiny", "sha256": "b" * 64},
        dataset_version=f"ds-{digest[:12]}",
        gold_hash=gold_hash,
        eval_report_digest=report_digest,
        config=config or {"train": {"learning_rate": 0.001}},
        provenance=provenance,
        evidence=evidence,
    )


def statuses(registry: Registry, release: Release, alerts: list[RuleCheck] | None = None) -> dict[str, str]:
    checklist = release_checklist(
        registry, registry.get_release(release.name, release.version), alerts=alerts or [], blocking=ALL_ITEMS
    )
    return {item.key: item.status for item in checklist.items}


# --- migration 0003 ----------------------------------------------------------------------


def test_migration_0003_upgrades_an_old_registry_whose_releases_still_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / ".slmkit" / "registry.db"
    old = [m for m in db.MIGRATIONS if m[0] < "0003"]
    with monkeypatch.context() as patch:
        patch.setattr(db, "MIGRATIONS", old)
        conn = db.connect(path)
        # A release as the previous slmkit wrote it: no provenance column, no evidence table.
        conn.execute(
            "INSERT INTO releases (name, version, run_id, adapter_digest, base_model, dataset_version, gold_hash,"
            " eval_report_digest, config, parent_version, created_by, created_at, note)"
            " VALUES ('tickets', 1, 'run-1', ?, '{\"spec\": \"tiny\"}', 'ds-1', ?, ?, '{\"seed\": 1}', NULL,"
            " 'alice@ci', '2026-01-01T00:00:00.000Z', 'old one')",
            ("a" * 64, "g" * 64, "e" * 64),
        )
        conn.execute("INSERT INTO aliases VALUES ('tickets', 'production', 1, '2026-01-01T00:00:00.000Z')")
        conn.close()

    with Registry(tmp_path / ".slmkit") as registry:
        applied = [r[0] for r in registry.conn.execute("SELECT name FROM schema_migrations ORDER BY rowid")]
        # The old registry gets every later migration, 0003 and on, in order.
        assert applied == [name for name, _ in db.MIGRATIONS]
        old_release = registry.resolve("tickets")
        assert (old_release.note, old_release.created_by, old_release.config) == ("old one", "alice@ci", {"seed": 1})
        assert old_release.provenance == {} and old_release.evidence == []
        assert "not recorded (released before slmkit recorded provenance)" in "\n".join(
            release_lines(registry, old_release)
        )
        # Evidence can be attached to an old release, and a new release on top records its own.
        registry.record_evidence("tickets", 1, "review", passed=True, detail={"summary": "signed off by bob"})
        new = registry.create_release(
            name="tickets",
            run_id="run-2",
            adapter_digest="c" * 64,
            base_model={"spec": "tiny"},
            dataset_version="ds-1",
            gold_hash="g" * 64,
            eval_report_digest="e" * 64,
            config={"seed": 2},
            provenance={"code": {"slmkit": "0.1.0"}},
        )
        assert (new.version, new.parent_version, new.provenance) == (2, 1, {"code": {"slmkit": "0.1.0"}})
        assert registry.get_release("tickets", 1).latest_evidence("review").detail["summary"] == "signed off by bob"


def test_evidence_is_attached_audited_and_append_only(registry: Registry, tmp_path: Path) -> None:
    rel = make_release(registry, tmp_path)
    registry.record_evidence("tickets", 1, "latency", passed=False, detail={"summary": "p95 900 ms at 8 rps"})
    latest = registry.record_evidence("tickets", 1, "latency", passed=True, detail={"summary": "p95 310 ms at 8 rps"})

    again = registry.get_release(rel.name, rel.version)
    assert [(e.kind, e.status) for e in again.evidence] == [("latency", "fail"), ("latency", "pass")]
    assert again.latest_evidence("latency") == latest and latest.created_by and latest.created_at.endswith("Z")
    entry = registry.audit_log("tickets", limit=1)[0]
    assert entry.action == "evidence"
    assert entry.detail == {"version": 1, "kind": "latency", "status": "pass", "summary": "p95 310 ms at 8 rps"}

    with pytest.raises(RegistryError, match="tickets has no version 9"):
        registry.record_evidence("tickets", 9, "latency", passed=True, detail={})
    with pytest.raises(RegistryError, match="cannot be an evidence kind"):
        registry.record_evidence("tickets", 1, "load test!", passed=True, detail={})
    conn = sqlite3.connect(registry.home / "registry.db")
    with pytest.raises(sqlite3.DatabaseError, match="evidence is append-only"):
        conn.execute("UPDATE evidence SET passed = 1")
    with pytest.raises(sqlite3.DatabaseError, match="evidence is append-only"):
        conn.execute("DELETE FROM evidence")


def test_a_release_is_refused_when_the_alias_moved_after_its_rehearsal(registry: Registry, tmp_path: Path) -> None:
    make_release(registry, tmp_path)
    # The caller rehearsed against "nothing behind production", but version 1 was released meanwhile.
    with pytest.raises(RegistryError, match="tickets@production moved from nothing to 1 while this release"):
        registry.create_release(
            name="tickets",
            run_id="run-x",
            adapter_digest="c" * 64,
            base_model={},
            dataset_version="ds-1",
            gold_hash="g" * 64,
            eval_report_digest="e" * 64,
            config={},
            evidence=[NewEvidence("rehearsal", None, {"summary": "first release"})],
            expected_parent=None,
        )
    assert [r.version for r in registry.list_releases("tickets")] == [1]
    assert registry.aliases("tickets") == {"production": 1}


# --- the checklist -------------------------------------------------------------------------


def test_every_item_passes_on_complete_evidence(registry: Registry, tmp_path: Path) -> None:
    rel = make_release(
        registry,
        tmp_path,
        evidence=[NewEvidence("rehearsal", True, {"summary": "16/16 answers of tickets@0 matched"})],
    )
    registry.record_evidence("tickets", 1, "latency", passed=True, detail={"summary": "p95 310 ms at 8 rps"})
    registry.record_evidence("tickets", 1, "review", passed=True, detail={"summary": "40 edge cases, bob"})

    checklist = release_checklist(
        registry,
        registry.resolve("tickets"),
        alerts=[RuleCheck("schema_valid_rate < 0.95 over 15m", True, "evaluates; no traffic yet")],
        blocking=ALL_ITEMS,
    )

    assert {i.key: i.status for i in checklist.items} == dict.fromkeys(ALL_ITEMS, "pass")
    assert checklist.blockers() == []
    text = "\n".join(checklist.lines())
    assert "schema_validity 0.960 on 25 gold items (schema_validity >= 0.95)" in text
    assert "3 rows had personal data replaced; 2/2 canaries checked, none survived" in text
    assert f"gold sha256:{rel.gold_hash[:12]} locked" in text
    assert "16/16 answers of tickets@0 matched" in text and "p95 310 ms at 8 rps" in text
    assert "1 rule(s) evaluate: schema_valid_rate < 0.95 over 15m" in text


def test_alert_rules_that_do_not_evaluate_fail_the_item_naming_them(registry: Registry, tmp_path: Path) -> None:
    make_release(registry, tmp_path)
    alerts = [
        RuleCheck("answers break the schema", True, "schema_valid_rate < 0.95 over 15m: evaluates; no traffic yet"),
        RuleCheck("input drift", False, "input_drift: no input reference (monitor.embeddings is off)"),
    ]

    item = release_checklist(registry, registry.resolve("tickets"), alerts=alerts, blocking=["alerts"]).item("alerts")

    assert item.status == "fail"
    assert item.evidence == (
        "1 of 2 rule(s) cannot evaluate: input drift: input_drift: no input reference (monitor.embeddings is off)"
    )


def test_missing_evidence_is_missing_not_passed(registry: Registry, tmp_path: Path) -> None:
    make_release(registry, tmp_path, report=eval_report(gates=[]), data_report=pii_report(configured=0, checked=0))

    found = statuses(registry, registry.resolve("tickets"))

    assert found == {
        "schema": "missing",  # no gate on schema_validity
        "pii": "missing",  # no canaries planted
        "gold_locked": "pass",
        "rollback": "missing",  # no rehearsal recorded
        "latency": "missing",
        "review": "missing",
        "alerts": "missing",
    }
    checklist = release_checklist(registry, registry.resolve("tickets"), alerts=[], blocking=["schema", "latency"])
    assert [i.key for i in checklist.blockers()] == ["schema", "latency"]
    assert "no gate on schema_validity in eval.gates (observed 0.960)" in checklist.item("schema").evidence
    checklist = release_checklist(registry, registry.resolve("tickets"), alerts=[], blocking=["schema", "rollback"])
    with pytest.raises(ReleaseBlocked) as err:
        checklist.refuse_blockers("tickets@1 is not ready for production")
    message = str(err.value)
    assert message.startswith("tickets@1 is not ready for production: schema validation passes: missing (no gate")
    assert "; rollback tested: missing (no rollback rehearsal recorded" in message
    assert "add a gate such as 'schema_validity >= 0.95'" in message and "release again with" in message
    assert err.value.exit_code == 9


def test_failures_are_named_with_their_evidence(registry: Registry, tmp_path: Path) -> None:
    failed_gate = {**SCHEMA_GATE, "passed": False}
    make_release(
        registry,
        tmp_path,
        report=eval_report([failed_gate], schema_validity=0.90),
        data_report=pii_report(survived=1),
        evidence=[NewEvidence("rehearsal", False, {"summary": "rollback to tickets@0 failed: base model changed"})],
    )
    registry.record_evidence("tickets", 1, "review", passed=False, detail={"summary": "3 of 40 edge cases wrong"})

    checklist = release_checklist(registry, registry.resolve("tickets"), alerts=[], blocking=ALL_ITEMS)

    assert {i.key: i.status for i in checklist.items if i.status == "fail"} == {
        "schema": "fail",
        "pii": "fail",
        "rollback": "fail",
        "review": "fail",
    }
    assert checklist.item("schema").evidence == "schema_validity 0.900 fails schema_validity >= 0.95"
    assert "1 of 2 canaries survived the build" in checklist.item("pii").evidence
    assert "base model changed" in checklist.item("rollback").evidence


def test_pii_off_fails_and_a_first_release_has_nothing_to_roll_back(registry: Registry, tmp_path: Path) -> None:
    make_release(
        registry,
        tmp_path,
        data_report=pii_report(enabled=False),
        evidence=[NewEvidence("rehearsal", None, {"summary": "first release behind 'production'"})],
    )
    found = statuses(registry, registry.resolve("tickets"))
    assert (found["pii"], found["rollback"]) == ("fail", "n/a")
    checklist = release_checklist(registry, registry.resolve("tickets"), alerts=[], blocking=["rollback"])
    assert checklist.blockers() == [], "n/a does not block"


def test_eval_set_lock_fails_when_replaced_or_when_the_gold_file_changed(registry: Registry, tmp_path: Path) -> None:
    rel = make_release(registry, tmp_path)
    assert statuses(registry, rel)["gold_locked"] == "pass"

    gold_file = registry.store.path(registry.get_dataset(rel.dataset_version).digest) / "gold.jsonl"
    gold_file.write_text('{"id": "g1", "edited": true}\n')
    checklist = release_checklist(registry, rel, alerts=[], blocking=[])
    assert checklist.item("gold_locked").status == "fail"
    assert "gold.jsonl now hashes to" in checklist.item("gold_locked").evidence

    registry.lock_gold("tickets", "f" * 64, "ds-new", replace=True, reason="new gold")
    checklist = release_checklist(registry, rel, alerts=[], blocking=[])
    assert "the locked gold set is now sha256:ffffffffffff" in checklist.item("gold_locked").evidence


# --- show and diff of hand-built records ---------------------------------------------------


def provenance_with(metrics: dict[str, float], template: str) -> dict[str, Any]:
    return {
        "eval": {"metrics": {"adapter": metrics}, "gates": [SCHEMA_GATE]},
        "chat_template": {"sha256": template},
        "tokenizer": {"sha256": "t" * 64},
        "dataset": {"counts": {"input": 200, "train": 120 + int(metrics["exact_match"] * 10), "gold": 25}},
    }


def test_diff_shows_changed_config_keys_data_counts_metric_deltas_and_hashes(
    registry: Registry, tmp_path: Path
) -> None:
    first = make_release(
        registry,
        tmp_path,
        config={"train": {"learning_rate": 0.001, "epochs": 1}, "eval": {"gates": ["a"]}},
        provenance=provenance_with({"schema_validity": 0.92, "exact_match": 0.60}, "1" * 64),
    )
    second = make_release(
        registry,
        tmp_path,
        config={"train": {"learning_rate": 0.002, "epochs": 1}, "eval": {"gates": ["a"]}, "seed": 7},
        provenance=provenance_with({"schema_validity": 0.96, "exact_match": 0.70}, "2" * 64),
    )

    text = "\n".join(diff_lines(registry, first, second))

    assert "config: 2 key(s) differ" in text
    assert "train.learning_rate  0.001 -> 0.002" in text and "seed              (absent) -> 7" in text
    assert "train.epochs" not in text, "unchanged keys are not listed"
    assert "train             126 -> 127 (+1)" in text
    assert "schema_validity                  0.920     0.960    +0.040" in text
    assert "exact_match                      0.600     0.700    +0.100" in text
    assert f"chat template     sha256:{'1' * 64} -> sha256:{'2' * 64}" in text
    assert f"tokenizer         sha256:{'t' * 64} (same)" in text
    assert f"adapter           sha256:{'a' * 64} (same)" in text


def test_show_prints_every_recorded_field(registry: Registry, tmp_path: Path) -> None:
    rel = make_release(
        registry,
        tmp_path,
        config={"train": {"learning_rate": 0.001}},
        provenance={
            **provenance_with({"schema_validity": 0.92, "exact_match": 0.6}, "1" * 64),
            "code": {
                "slmkit": "0.1.0",
                "slmkit_git": {"commit": "abc123def4567890", "dirty": True},
                "project_git": None,
            },
            "hardware": {"cpu": "Test CPU", "cores": 4, "ram_bytes": 8 * 2**30, "gpus": []},
        },
        evidence=[NewEvidence("rehearsal", None, {"summary": "first release behind 'production'"})],
    )
    text = "\n".join(release_lines(registry, rel))
    for expected in (
        "tickets@1   aliases: production",
        f"digest            sha256:{'a' * 64}",
        f"chat template     sha256:{'1' * 64}",
        "slmkit 0.1.0; slmkit source git abc123def456 (uncommitted changes); project not in git",
        "Test CPU; 4 cores; 8.0 GiB RAM; no GPU",
        "rehearsal         N/A  first release behind 'production'",
        "gate              PASS  schema_validity >= 0.95",
        "train.learning_rate  0.001",
        f"gold set          sha256:{rel.gold_hash}",
    ):
        assert expected in text, expected
