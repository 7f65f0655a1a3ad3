"""Monitoring inside a real `slmkit serve`: signals per answer, embeddings, capture, alerts on a timer,
and the CLI around them. The tiny model answers (decoded under the schema); the embedding model is the
real all-MiniLM-L6-v2; requests go over HTTP through the official openai client."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from openai import OpenAI
from typer.testing import CliRunner

from slmkit.cli.main import app
from slmkit.config import ProjectConfig, load_config
from slmkit.data import run_data_build
from slmkit.models import resolve_base_model
from slmkit.monitor import RequestLog
from slmkit.registry import Registry, Release
from slmkit.serve import start_server
from tests.conftest import write_project
from tests.monitor.conftest import record_release
from tests.serve.conftest import make_adapter, scrape
from tests.test_release_cli import cli

EMAIL, PHONE = "maria.lopez@example.org", "(415) 555-0187"
TICKETS = [
    {"subject": "Refund still missing", "body": f"I returned my HaloCam 2K (order ORD-771204). Mail me at {EMAIL}."},
    {"subject": "laptop dead", "body": f"my aerobook 14 will not turn on, call {PHONE} please"},
    {"subject": "charged twice", "body": "My card was charged twice for order ORD-123456 (PulseBuds Pro)."},
    {"subject": "pizza", "body": "Can you recommend a good pizza place near the station?"},
]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> tuple[ProjectConfig, Release]:
    """The example project on the tiny model, monitoring fully on: embeddings, capture of every answer, alerts
    every second; its dataset built for real and a LoRA adapter released with an eval report."""
    root = tmp_path_factory.mktemp("monitored")
    rules = [
        {"name": "answers break the schema", "metric": "schema_valid_rate", "op": "<", "threshold": 0.95,
         "window": "15m", "min_requests": 2},
        {"name": "input drift", "metric": "input_drift", "op": ">=", "threshold": 1, "window": "1h",
         "min_requests": 100},
        {"name": "label mix drift", "metric": "label_drift", "op": ">=", "threshold": 1, "window": "1h",
         "min_requests": 100},
        {"name": "less sure", "metric": "confidence_drift", "op": ">=", "threshold": 1, "window": "1h",
         "min_requests": 100},
    ]  # fmt: skip
    overrides = {
        "serve.max_new_tokens": 64,
        "serve.constrained": True,
        "monitor.embeddings": True,
        "monitor.capture": {"share": 1.0, "retention_days": 30},
        "monitor.evaluate_every_s": 1,
        "monitor.alerts": rules,
    }
    config = load_config(write_project(root / "project", tiny_model_dir, rows=60, overrides=overrides))
    dataset = run_data_build(config)
    adapter = make_adapter(tiny_model_dir, root / "adapter", seed=3)
    release = record_release(
        config,
        dataset_version=dataset.version,
        adapter_dir=adapter,
        base_model=resolve_base_model(str(tiny_model_dir)).record(),
    )
    return config, release


def ask(url: str, content: str, history: list[dict[str, str]] | None = None) -> Any:
    client = OpenAI(base_url=url, api_key="unused", max_retries=0)
    messages: Any = [*(history or []), {"role": "user", "content": content}]
    return client.chat.completions.create(model="support-tickets", messages=messages)


def test_each_answer_is_logged_with_its_signals_and_captured_redacted(served: tuple[ProjectConfig, Release]) -> None:
    config, release = served
    with start_server(config) as handle:
        assert any(
            line.startswith("  capture: ON, 100% of answered requests") for line in handle.service.monitoring.lines()
        )
        replies = [ask(handle.url, json.dumps(ticket)) for ticket in TICKETS]
        ask(
            handle.url,
            "and the invoice too?",
            history=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        )
        assert handle.service.recorder.flush(timeout=120)
        written = datetime.now(UTC)
        deadline = time.monotonic() + 30  # the alert timer runs every second
        loop = handle.service.monitoring.alerts
        while loop.last is None or loop.last.evaluated_at < written:
            assert time.monotonic() < deadline, "the alert rules were not evaluated inside the server"
            time.sleep(0.2)
        samples = scrape(handle.url)
    labels = {r.model_extra["slmkit"]["release"] for r in replies}
    assert labels == {release.ref}

    with RequestLog(config.state_dir / "requests.db") as log:
        rows = log.rows()
        captures = log.captures()
    assert len(rows) == 5
    schema_labels = {"billing", "shipping", "returns", "technical", "account", "out_of_scope"}
    for row in rows:
        assert row["outcome"] in ("ok", "refused")
        assert row["label"] in schema_labels and row["null_fields"] in range(5)
        assert row["ttft_ms"] > 0 and row["itl_ms"] > 0
        if not row["replaced"]:
            assert 0.0 < row["confidence"] <= 1.0  # the least likely token's probability, as eval computes it
        assert len(row["embedding"]) == 384 and row["novelty"] >= 0.0 and isinstance(row["flagged"], bool)

    assert len(captures) == 5
    stored = json.dumps(captures)
    assert EMAIL not in stored and "555-0187" not in stored
    first = next(c for c in captures if "HaloCam" in json.dumps(c["messages"]))
    assert first["messages"][-1]["content"]["body"].endswith("Mail me at <EMAIL_1>.")
    assert first["redactions"] == {"EMAIL": 1} and json.loads(first["answer"])["category"] in schema_labels
    history = next(c for c in captures if len(c["messages"]) == 3)
    assert [m["role"] for m in history["messages"]] == ["user", "assistant", "user"]

    raw = b"".join(p.read_bytes() for p in config.state_dir.glob("requests.db*"))
    assert EMAIL.encode() not in raw and b"555-0187" not in raw

    with Registry(config.state_dir) as registry:
        ((digest, meta),) = registry.find_artifacts("drift_reference")
        assert meta["dataset_version"] == release.dataset_version and meta["rows"] > 10
        assert registry.store.verify(digest) == []

    state = {dict(labels)["alert"]: value for (name, labels), value in samples.items() if name == "slmkit_alert_state"}
    assert state == {"answers break the schema": 0.0, "input drift": 0.0, "label mix drift": 0.0, "less sure": 0.0}
    monitored = {
        dict(labels)["metric"]: value
        for (name, labels), value in samples.items()
        if name == "slmkit_monitor_value" and dict(labels)["window"] == "15m"
    }
    assert monitored["requests"] == 5 and monitored["schema_valid_rate"] == pytest.approx(
        sum(r["valid"] for r in rows) / 5
    )


def test_the_cli_reports_checks_and_exports_the_rules(served: tuple[ProjectConfig, Release], tmp_path: Path) -> None:
    config, release = served
    project = str(config.root)
    runner = CliRunner()

    report = runner.invoke(app, ["monitor", "-p", project, "--since", "1d", "--out", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output
    assert "requests" in report.output and release.ref in report.output
    assert (tmp_path / "report" / "monitor.html").exists()
    ref_first = runner.invoke(app, ["monitor", "1", "-p", project, "--out", str(tmp_path / "one")])
    assert ref_first.exit_code == 0, ref_first.output

    alerts = runner.invoke(app, ["monitor", "alerts", "-p", project, "--exit-code"])
    assert alerts.exit_code == 0, alerts.output
    assert "INACTIVE support-tickets@1       input drift: no value (5 requests < min_requests 100)" in alerts.output

    rules = runner.invoke(app, ["monitor", "rules", "-p", project, "--out", str(tmp_path / "rules")])
    assert rules.exit_code == 0 and (tmp_path / "rules" / "prometheus-rules.yml").exists()

    check = runner.invoke(app, ["check", "-p", project])
    assert "PASS    monitoring alerts defined               4 rule(s) evaluate" in check.output, check.output
    assert "input_drift >= 1 over 1h: evaluates (reference: " in check.output


def test_an_alert_firing_makes_the_cron_command_fail(served: tuple[ProjectConfig, Release], tmp_path: Path) -> None:
    config, _ = served
    project = config.root / "slmkit.yaml"
    original = project.read_text()
    settings = yaml.safe_load(original)
    settings["monitor"]["alerts"] = [
        {
            "name": "any traffic at all",
            "metric": "requests",
            "op": ">=",
            "threshold": 1,
            "window": "1d",
            "min_requests": 1,
        }
    ]
    try:
        project.write_text(yaml.safe_dump(settings, sort_keys=False))
        code, out, err = cli("monitor", "alerts", "-p", str(config.root), "--exit-code")
    finally:
        project.write_text(original)
    assert code == 11, err
    assert "FIRING   support-tickets@1       any traffic at all: 5 (was inactive)" in out
    assert "error: 1 alert(s) firing: any traffic at all (support-tickets@1)" in err
    db = sqlite3.connect(config.state_dir / "requests.db")
    assert db.execute("SELECT state FROM alert_state WHERE rule = 'any traffic at all'").fetchone() == ("firing",)


def test_replay_sends_recorded_requests_through_a_running_server(
    served: tuple[ProjectConfig, Release], tmp_path: Path
) -> None:
    config, release = served
    requests = tmp_path / "traffic.jsonl"
    lines = [json.dumps({**ticket, "output": {"category": "billing"}, "shift": None}) for ticket in TICKETS[:2]]
    requests.write_text("\n".join([*lines, json.dumps({"messages": [{"role": "user", "content": "hello"}]})]) + "\n")
    with start_server(config) as handle:
        code, out, err = cli("monitor", "replay", str(requests), "--url", handle.url, "-p", str(config.root))
    assert code == 0, err
    assert out.startswith("3/3 answered in ") and f"({release.ref} 3); errors: none" in out

    requests.write_text('{"subject": "x", "body": "y"}\n{"title": "no input field"}\n')
    code, _, err = cli("monitor", "replay", str(requests), "-p", str(config.root))
    assert code == 3 and f"{requests}:2: none of the task's input fields (subject, body) and no 'messages'" in err
