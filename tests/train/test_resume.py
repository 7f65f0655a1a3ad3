"""`slmkit train --resume`: a run killed mid-training continues to the very adapter an uninterrupted run makes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from slmkit.config import load_config
from slmkit.data import run_data_build
from slmkit.errors import StageError
from slmkit.registry import Registry
from slmkit.train import run_train
from slmkit.train.checkpoint import KILL_AFTER_STEP_ENV, TEST_HOOKS_ENV, load_checkpoint
from tests.conftest import read_jsonl, write_project
from tests.test_cli import run_cli

REPO = Path(__file__).resolve().parents[2]


def set_train(project: Path, **settings: object) -> None:
    config = yaml.safe_load((project / "slmkit.yaml").read_text())
    config["train"].update(settings)
    (project / "slmkit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def adapter_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_adapter(tmp_path, tiny_model_dir, capsys):
    # Dropout on, so the resumed run must also restore the random generators to match.
    project = write_project(
        tmp_path / "p",
        tiny_model_dir,
        overrides={
            "train.max_steps": 6,
            "train.batch_size": 4,
            "train.eval_every": 2,
            "train.threads": 1,
            "train.learning_rate": 0.01,
            "train.lora.dropout": 0.1,
            "train.early_stopping_patience": None,
        },
    )
    config = load_config(project)
    run_data_build(config)
    whole = run_train(config, progress=False)

    # The same training in another process, killed (SIGKILL: no clean-up) after step 3; its last
    # checkpoint is from the validation at step 2, and metrics.jsonl already holds step 3.
    env = {**os.environ, KILL_AFTER_STEP_ENV: "3", TEST_HOOKS_ENV: "1", "PYTHONPATH": str(REPO / "src")}
    killed = subprocess.run(
        [sys.executable, "-m", "slmkit", "train", "-p", str(project), "-q"], env=env, capture_output=True, text=True
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    runs = project / ".slmkit" / "runs"
    run_id = next(d.name for d in runs.iterdir() if d.name != whole.run_id)
    run_dir = runs / run_id
    assert [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl")] == [0, 1, 2, 3]
    saved = load_checkpoint(run_dir)
    assert saved is not None and saved.state.step == 2
    assert not (run_dir / "adapter").exists() and not (run_dir / "run.json").exists()
    registry = Registry(config.state_dir)
    assert {r.run_id: r.status for r in registry.list_runs(config.task.name)}[run_id] == "running"

    # Changed settings are refused, naming what differs; nothing is touched.
    set_train(project, learning_rate=0.02)
    with pytest.raises(StageError, match=r"train\.learning_rate: 0\.01 in the run, 0\.02 now"):
        run_train(load_config(project), resume=run_id, progress=False)
    set_train(project, learning_rate=0.01)
    with pytest.raises(StageError, match="drop --dataset"):
        run_train(load_config(project), resume=run_id, dataset_version="other-version", progress=False)

    code, out, err = run_cli(capsys, "train", "-p", str(project), "-q", "--resume", run_id)
    assert code == 0, err
    assert f"run {run_id}: 6 steps" in out and "resuming run" in out and "at step 2" in out

    mine, theirs = adapter_tensors(run_dir), adapter_tensors(whole.run_dir)
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine), "the resumed adapter differs from the uninterrupted one"
    assert any("lora_B" in k and t.abs().sum() > 0 for k, t in mine.items()), "training must have moved the adapter"

    records = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(7)), "steps after the checkpoint must not be written twice"
    reference = read_jsonl(whole.run_dir / "metrics.jsonl")
    assert [(r.get("loss"), r.get("val_loss")) for r in records] == [
        (r.get("loss"), r.get("val_loss")) for r in reference
    ]

    run = registry.get_run(run_id)  # completed, under the id it started with
    assert run.metrics["resumed_at_steps"] == [2] and run.metrics["steps"] == 6
    assert json.loads((run_dir / "run.json").read_text())["run_id"] == run_id
    assert [r.run_id for r in registry.list_runs(config.task.name)].count(run_id) == 1
    with pytest.raises(StageError, match="already completed"):
        run_train(load_config(project), resume=run_id, progress=False)
