"""`slmkit retrain` on the tiny model: production traffic through a real server, the review queue
answered with the traffic's own labels (the traffic files carry them), then build -> train -> eval
-> release, gated against production item by item; idempotent, locked, audited."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slmkit.config import load_config
from slmkit.monitor.queue import build_queue, queue_items
from slmkit.monitor.requests import RequestLog
from slmkit.monitor.review_export import export_items
from slmkit.monitor.review_import import import_answers
from slmkit.pipeline import run_pipeline
from slmkit.registry import Registry
from slmkit.retrain import run_retrain
from slmkit.retrain.plan import retrain_lock
from tests.conftest import REPO, write_project
from tests.retrain_helpers import fill_csv, send_traffic, traffic_rows

FAST = {
    "train.max_steps": 4,
    "train.batch_size": 4,
    "train.eval_every": 2,
    "eval.max_items": 8,
    "eval.max_new_tokens": 24,
    "eval.compare_base": False,
    "eval.forgetting": False,
    "eval.decoding": "as_served",
    "eval.calibration_items": 0,
    "eval.gates": ["schema_validity >= 0.0"],
    "release.rehearsal_items": 4,
    "serve.max_new_tokens": 24,
    "monitor.capture": {"share": 1.0, "retention_days": 30},
    "monitor.review": {"size": 12, "random": 0.25, "low_confidence": 0.5, "flagged": 0.0, "refused": 0.25},
    # The tiny model's answers are noise: a margin of 1 lets a retrain of it through; the blocked
    # case below narrows it to 0.
    "monitor.retrain": {"regression_gate": "label_accuracy no_regression_vs production margin 1.0"},
}


@pytest.fixture(scope="module")
def reviewed_project(tmp_path_factory, tiny_model_dir: Path) -> Path:
    """The example project on the tiny model, released once (production -> v1), 24 shifted tickets sent
    through a real server and 12 of them reviewed (built once per module)."""
    root = tmp_path_factory.mktemp("retrain") / "project"
    config = load_config(write_project(root, tiny_model_dir, rows=120, overrides=FAST))
    result = run_pipeline(config, progress=False, log=lambda _: None)
    assert result.release is not None and result.release.version == 1
    labels = send_traffic(config, traffic_rows("shifted", 0, 24))
    with RequestLog(config.state_dir / "requests.db") as log, Registry(config.state_dir) as registry:
        build_queue(log, config.monitor.review, actor="test")
        export = export_items(config.task.name, queue_items(log, open_only=True), root.parent / "review")
        fill_csv(export.out_dir / "queue.csv", labels)
        imported = import_answers(config, log, registry, export.out_dir / "queue.csv", reviewer="alice")
    assert sum(imported.recorded.values()) == 12
    return root


@pytest.fixture
def released(reviewed_project: Path, tmp_path: Path):
    """A copy of the reviewed project for one test."""
    shutil.copytree(reviewed_project, tmp_path / "project")
    return load_config(tmp_path / "project")


def test_a_retrain_on_reviewed_traffic_releases_when_every_gate_passes_and_says_so_when_rerun(released):
    config = released
    lines: list[str] = []
    result = run_retrain(config, why="test: drift alert", progress=False, log=lines.append)

    assert result.outcome == "released", result.lines()
    registry = Registry(config.state_dir)
    assert registry.aliases(config.task.name)["production"] == 2
    v2 = registry.get_release(config.task.name, 2)
    assert v2.run_id == result.record.run_id and v2.parent_version == 1
    # The dataset it trained on read the reviewed items: 12 answered rows from requests.db.
    dataset = registry.get_dataset(v2.dataset_version)
    assert any(s["path"] == ".slmkit/reviewed.jsonl" for s in dataset.meta["sources"])
    # Every gate of the run was judged, the paired one against v1 among them.
    gates = {g["gate"]: g for g in result.record.detail["gates"]}
    paired = gates["label_accuracy no_regression_vs production margin 1.0"]
    assert paired["passed"] and paired["compared_with"] == "support-tickets@1"
    # Every automatic action is audited as `retrain`, with why.
    entries = registry.audit_log(config.task.name, limit=50)
    by_retrain = {e.action for e in entries if e.actor == "retrain"}
    assert {"dataset", "eval", "release", "alias", "retrain_start", "retrain_released"} <= by_retrain
    started = next(e for e in entries if e.action == "retrain_start")
    assert started.detail["why"] == "test: drift alert"
    assert next(e for e in entries if e.action == "release").actor == "retrain"

    # The same input again: nothing is built, trained or released, and it says so.
    again = run_retrain(config, why="cron", progress=False, log=lines.append)
    assert again.outcome == "unchanged" and "nothing to do" in again.message
    assert registry.aliases(config.task.name)["production"] == 2
    assert len(registry.list_retrains(config.task.name)) == 1
    registry.close()


def test_a_retrain_that_fails_the_paired_gate_moves_nothing_and_says_by_how_much(released, tmp_path):
    path = released.root / "slmkit.yaml"
    path.write_text(path.read_text().replace("margin 1.0", "margin 0.0"))
    config = load_config(released.root)

    result = run_retrain(config, why="test", progress=False, log=lambda _: None)

    assert result.outcome == "blocked" and result.exit_code == 6
    (line,) = result.failed
    assert line.startswith("label_accuracy no_regression_vs production margin 0.0: difference")
    assert "needs >= +0.000 (short by" in line
    registry = Registry(config.state_dir)
    assert registry.aliases(config.task.name)["production"] == 1
    assert [r.version for r in registry.list_releases(config.task.name)] == [1]
    run = registry.find_run(result.record.run_id)
    assert run is not None and run.status == "completed"  # the run is kept
    assert json.loads(Path(result.report_path).read_text())["outcome"] == "blocked"
    registry.close()


def test_a_warm_started_retrain_that_never_improves_on_production_is_blocked_before_eval(released):
    retrain = released.monitor.retrain.model_copy(update={"warm_start": True})
    config = released.model_copy(
        update={
            "monitor": released.monitor.model_copy(update={"retrain": retrain}),
            # A learning rate too small to move a weight: every validation loss equals the warm start's.
            "train": released.train.model_copy(update={"learning_rate": 1e-12}),
        }
    )

    result = run_retrain(config, why="test", progress=False, log=lambda _: None)

    assert result.outcome == "blocked" and result.exit_code == 6, result.lines()
    (line,) = result.failed
    assert line.startswith("training never improved on support-tickets@1's adapter")
    registry = Registry(config.state_dir)
    assert registry.latest_eval(result.record.run_id) is None  # not evaluated against itself
    assert registry.aliases(config.task.name)["production"] == 1
    registry.close()


def test_a_second_retrain_is_refused_while_one_holds_the_lock(released):
    with retrain_lock(released.state_dir):
        done = subprocess.run(
            [sys.executable, "-m", "slmkit", "retrain", "-p", str(released.root)],
            capture_output=True,
            text=True,
            env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
            timeout=300,
        )
    assert done.returncode == 5, done.stderr
    assert "another retrain is running (pid" in done.stderr and "nothing was started" in done.stderr
