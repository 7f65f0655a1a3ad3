"""When a retrain is due (`slmkit retrain --if-due`), and the schedule that asks (`slmkit retrain schedule`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from slmkit.config import TrafficReviewConfig, load_config
from slmkit.errors import SlmkitError
from slmkit.monitor.queue import ReviewAnswer, build_queue, queue_items, record_answers
from slmkit.registry import Registry
from slmkit.retrain.schedule import calendars, schedule_text
from slmkit.retrain.triggers import due
from tests.monitor.conftest import monitored_project
from tests.monitor.test_traffic_queue import capture
from tests.test_cli import run_cli


def _with_triggers(root: Path, **retrain: object) -> None:
    path = root / "slmkit.yaml"
    settings = yaml.safe_load(path.read_text())
    settings["monitor"]["retrain"] = retrain
    path.write_text(yaml.safe_dump(settings, sort_keys=False))


def test_nothing_is_due_without_a_trigger_and_the_command_says_so(tmp_path: Path, capsys) -> None:
    monitored = monitored_project(tmp_path / "p")
    code, out, _ = run_cli(capsys, "retrain", "--if-due", "-p", str(monitored.config.root))
    assert code == 0
    assert "retrain not due" in out and "no trigger in monitor.retrain" in out
    with Registry(monitored.config.state_dir) as registry:
        assert registry.list_retrains("support-tickets") == []


def test_new_reviewed_items_make_a_retrain_due(tmp_path: Path) -> None:
    monitored = monitored_project(tmp_path / "p")
    _with_triggers(monitored.config.root, new_reviewed=3)
    config = load_config(monitored.config.root, check_files=False)
    with monitored.log() as log, Registry(config.state_dir) as registry:
        capture(log, 10, confidence=0.5)
        build_queue(log, TrafficReviewConfig(size=5, random=1.0, low_confidence=0, flagged=0, refused=0))
        items = queue_items(log)
        answer = lambda i: ReviewAnswer(i.request_id, "accept", None, "", "a", "2026-12-06T10:00:00.000Z", "t")  # noqa: E731
        record_answers(log, [answer(i) for i in items[:2]])
        assert not due(config, registry, log).due
        record_answers(log, [answer(items[2])])
        judged = due(config, registry, log)
    assert judged.reasons == ["3 production items reviewed since the last retrain (new_reviewed 3)"]


def test_a_firing_drift_alert_on_the_production_release_makes_a_retrain_due(tmp_path: Path) -> None:
    monitored = monitored_project(tmp_path / "p")
    _with_triggers(monitored.config.root, on_drift_alert=True)
    config = load_config(monitored.config.root, check_files=False)
    drift = next(r for r in config.monitor.alerts if r.metric == "label_drift")
    other = next(r for r in config.monitor.alerts if r.metric == "refusal_rate")

    def fire(rule: str, release: str) -> None:
        with monitored.log() as log, log.transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO alert_state (rule, release, state, since, value, evaluated_at, fired_at, "
                "evidence) VALUES (?, ?, 'firing', ?, 1.0, ?, ?, '{}')",
                (rule, release, "2026-12-06T10:00:00Z", "2026-12-06T10:00:00Z", "2026-12-06T10:00:00Z"),
            )

    with Registry(config.state_dir) as registry:
        fire(other.text, "support-tickets@1")  # firing, but not a drift rule
        fire(drift.text, "support-tickets@7")  # a drift rule, but not the release in production
        with monitored.log() as log:
            assert not due(config, registry, log).due
        fire(drift.text, "support-tickets@1")
        with monitored.log() as log:
            judged = due(config, registry, log)
    assert judged.due and "drift alert firing for support-tickets@1: 'label mix drift'" in judged.reasons[0]


def test_every_days_counts_from_the_last_retrain(tmp_path: Path) -> None:
    monitored = monitored_project(tmp_path / "p")
    _with_triggers(monitored.config.root, every_days=7)
    config = load_config(monitored.config.root, check_files=False)
    with Registry(config.state_dir) as registry, monitored.log() as log:
        assert due(config, registry, log).reasons == ["no retrain yet (monitor.retrain.every_days)"]
        record = registry.start_retrain(task="support-tickets", inputs="i", config_hash="c", production="", why="t")
        registry.update_retrain(record.id, outcome="blocked", stage="done")
        now = datetime.now(UTC)
        assert not due(config, registry, log, now=now + timedelta(days=6)).due
        assert due(config, registry, log, now=now + timedelta(days=7, hours=1)).due


def test_the_schedule_is_a_timer_and_a_service_or_a_crontab_line_with_flock(tmp_path: Path, capsys) -> None:
    monitored = monitored_project(tmp_path / "p")
    root = monitored.config.root
    code, out, _ = run_cli(capsys, "retrain", "schedule", "--every", "15m", "-p", str(root))
    assert code == 0
    assert "[Timer]\nOnCalendar=*:0/15\nPersistent=true" in out
    assert f"WorkingDirectory={root}" in out and "Type=oneshot" in out
    exec_line = next(line for line in out.splitlines() if line.startswith("ExecStart="))
    assert exec_line.endswith(f"retrain --if-due --project {root}")
    code, out, _ = run_cli(capsys, "retrain", "schedule", "--cron", "--every", "6h", "-p", str(root))
    assert out.splitlines()[1].startswith(f"0 */6 * * * cd {root} && flock -n {root}/.slmkit/retrain.cron.lock ")
    assert calendars("1h") == ("hourly", "0 * * * *") and calendars("1d") == ("daily", "0 3 * * *")
    with pytest.raises(SlmkitError, match="divides the hour or the day"):
        schedule_text(root, "t", "7m")


def test_retrain_list_shows_each_retrain_and_why(tmp_path: Path, capsys) -> None:
    monitored = monitored_project(tmp_path / "p")
    with Registry(monitored.config.state_dir) as registry:
        record = registry.start_retrain(task="support-tickets", inputs="i", config_hash="c",
                                        production="support-tickets@1", why="drift alert")  # fmt: skip
        failed = ["label_accuracy >= 0.6: observed 0.5, needs 0.6 (short by 0.1)"]
        registry.update_retrain(record.id, stage="done", outcome="blocked", detail={"failed": failed})
    code, out, _ = run_cli(capsys, "retrain", "list", "-p", str(monitored.config.root))
    assert code == 0
    assert "#1" in out and "blocked" in out and "why: drift alert" in out and "short by 0.1" in out
