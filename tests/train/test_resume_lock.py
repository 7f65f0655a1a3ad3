"""Two `slmkit train --resume` of one run at once: one trains it to the end, the other is refused
before it writes anything; and the test hook that kills a run obeys only an explicit test flag."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from slmkit.config import load_config
from slmkit.data import run_data_build
from slmkit.registry import Registry
from slmkit.train.checkpoint import KILL_AFTER_STEP_ENV, TEST_HOOKS_ENV
from tests.conftest import read_jsonl, write_project

REPO = Path(__file__).resolve().parents[2]
STEPS = 160  # long enough that the two resumes overlap by seconds


def train(project: Path, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "slmkit", "train", "-p", str(project), "-q", *args],
        env={**os.environ, "PYTHONPATH": str(REPO / "src"), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_second_resume_of_a_run_in_training_is_refused_and_never_writes_to_it(tmp_path, tiny_model_dir):
    project = write_project(
        tmp_path / "p",
        tiny_model_dir,
        overrides={
            "train.max_steps": STEPS,
            "train.batch_size": 4,
            "train.eval_every": 2,
            "train.threads": 1,
            "train.early_stopping_patience": None,
        },
    )
    config = load_config(project)
    run_data_build(config)

    # Without the explicit test flag the kill hook is inert: this run trains to the end.
    whole = train(project, **{KILL_AFTER_STEP_ENV: "3"})
    _, err = whole.communicate(timeout=600)
    assert whole.returncode == 0, err[-2000:]

    killed = train(project, **{KILL_AFTER_STEP_ENV: "3", TEST_HOOKS_ENV: "1"})
    killed.communicate(timeout=600)
    assert killed.returncode == -signal.SIGKILL
    registry = Registry(config.state_dir)
    (run_id,) = [r.run_id for r in registry.list_runs(config.task.name) if r.status == "running"]

    first, second = train(project, "--resume", run_id), train(project, "--resume", run_id)
    results = [(p, *p.communicate(timeout=900)) for p in (first, second)]
    outcomes = [(p.returncode, out, err) for p, out, err in results]
    finished = [o for o in outcomes if o[0] == 0]
    refused = [o for o in outcomes if o[0] != 0]
    assert len(finished) == 1 and len(refused) == 1, [o[2][-500:] for o in outcomes]
    code, _, err = refused[0]
    assert code == 5 and "Traceback" not in err
    assert f"run {run_id} is being trained by another process" in err or "already completed" in err

    run = next(r for r in registry.list_runs(config.task.name) if r.run_id == run_id)
    assert run.status == "completed" and run.error is None  # the refused process never marked it failed
    assert run.metrics["steps"] == STEPS and run.metrics["resumed_at_steps"] == [2]
    records = read_jsonl(config.state_dir / "runs" / run_id / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(STEPS + 1)), "each step is written once, by the winner"
    assert (config.state_dir / "runs" / run_id / "run.json").exists()
    registry.close()
