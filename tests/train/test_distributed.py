"""`accelerate launch slmkit train`: two CPU processes (gloo) reach the adapter one process reaches."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from safetensors.torch import load_file

from slmkit.config import load_config
from slmkit.data import run_data_build
from slmkit.registry import Registry
from slmkit.train import run_train
from slmkit.train.checkpoint import KILL_AFTER_STEP_ENV, TEST_HOOKS_ENV, load_checkpoint
from slmkit.train.distributed import World
from tests.conftest import read_jsonl, write_project

REPO = Path(__file__).resolve().parents[2]


def test_a_lone_process_is_a_world_of_one():
    world = World()
    assert (world.rank, world.size, world.is_main, world.distributed) == (0, 1, True, False)
    assert world.shard([1, 2, 3]) == [1, 2, 3]
    assert world.sum(2.0, 3.0) == [2.0, 3.0]
    assert world.share("run-id") == "run-id"


def test_each_process_takes_every_other_row_of_a_batch():
    rows = [10, 11, 12, 13, 14]
    first, second = World(0, 2).shard(rows), World(1, 2).shard(rows)
    assert (first, second) == ([10, 12, 14], [11, 13])
    assert sorted(first + second) == rows
    assert World(1, 2).shard([10]) == [], "a batch smaller than the world leaves a process idle, not short"


SETTINGS = {
    "train.max_steps": 6,
    "train.batch_size": 4,
    "train.grad_accum": 2,
    "train.eval_every": 3,
    "train.learning_rate": 0.01,
    # Dropout off: each process draws its own dropout masks, so only then can the runs agree to rounding.
    "train.lora.dropout": 0.0,
    "train.precision": "fp32",  # bf16 rounds each layout differently, and Adam amplifies it
    "train.early_stopping_patience": None,
}
DATA_PARALLEL = ("--multi_gpu",)  # accelerate's multi-process launcher; with no GPU, a gloo group on the CPU
FSDP = ("--use_fsdp", "--fsdp_version", "2")


@pytest.mark.slow
@pytest.mark.parametrize("launch", [DATA_PARALLEL, FSDP], ids=["data-parallel", "fsdp"])
def test_two_gloo_processes_match_one_process(tmp_path, tiny_model_dir, launch):
    project = write_project(tmp_path / "p", tiny_model_dir, overrides=SETTINGS)
    config = load_config(project)
    run_data_build(config)
    single = run_train(config, progress=False, log=lambda _: None)

    launched = _accelerate_launch(project, *launch)
    assert launched.returncode == 0, launched.stderr[-3000:]
    # One summary (the main process's), one run, one adapter.
    assert launched.stdout.count("steps,") == 1, launched.stdout
    if launch == FSDP:
        assert "FSDP: every weight sharded across 2 processes" in launched.stdout
    registry = Registry(config.state_dir)
    runs = [r for r in registry.list_runs(config.task.name) if r.run_id != single.run_id]
    assert len(runs) == 1 and runs[0].status == "completed"
    run = registry.get_run(runs[0].run_id)
    assert run.metrics["processes"] == 2 and single.metrics["processes"] == 1
    assert run.metrics["steps"] == single.metrics["steps"] == 6
    assert run.metrics["tokens"] == single.metrics["tokens"], "both runs must see the same rows"

    run_dir = config.state_dir / "runs" / run.run_id
    mine = load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))
    theirs = load_file(str(single.adapter_dir / "adapter_model.safetensors"))
    assert mine.keys() == theirs.keys()
    moved = max(float(theirs[k].abs().max()) for k in theirs if "lora_B" in k)
    assert moved > 1e-3, "training must have moved the adapter"
    worst = max(float((mine[k] - theirs[k]).abs().max()) for k in mine)
    print(f"largest weight difference, 2 processes ({launch[0]}) vs 1: {worst:.2e} (largest lora_B weight {moved:.2e})")
    assert worst < 1e-4 * max(1.0, moved)
    # The checkpoint holds whole weights, whichever way the run was launched.
    saved = load_file(str(run_dir / "checkpoints" / "last" / "weights.safetensors"))
    reference = load_file(str(single.run_dir / "checkpoints" / "last" / "weights.safetensors"))
    assert {k: v.shape for k, v in saved.items()} == {k: v.shape for k, v in reference.items()}
    assert max(float((saved[k] - reference[k]).abs().max()) for k in saved) < 1e-4 * max(1.0, moved)

    # The same losses at every step, to summation order.
    two = read_jsonl(run_dir / "metrics.jsonl")
    one = read_jsonl(single.run_dir / "metrics.jsonl")
    assert [r["step"] for r in two] == [r["step"] for r in one]
    for a, b in zip(two, one, strict=True):
        for key in ("loss", "val_loss"):
            if key in b:
                assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), (a["step"], key)


@pytest.mark.slow
def test_a_killed_fsdp_run_resumes_under_fsdp_to_the_adapter_one_process_makes(tmp_path, tiny_model_dir):
    project = write_project(tmp_path / "p", tiny_model_dir, overrides=SETTINGS)
    config = load_config(project)
    run_data_build(config)
    single = run_train(config, progress=False, log=lambda _: None)

    # SIGKILL after step 4: the checkpoint of step 3 (whole weights, whole optimizer state) is the last.
    killed = _accelerate_launch(project, *FSDP, extra_env={KILL_AFTER_STEP_ENV: "4", TEST_HOOKS_ENV: "1"})
    assert killed.returncode != 0
    registry = Registry(config.state_dir)
    (run,) = [r for r in registry.list_runs(config.task.name) if r.run_id != single.run_id]
    assert load_checkpoint(config.state_dir / "runs" / run.run_id).state.step == 3

    refused = _accelerate_launch(project, *DATA_PARALLEL, train_args=("--resume", run.run_id))
    assert refused.returncode != 0 and "was written under FSDP" in refused.stderr + refused.stdout

    resumed = _accelerate_launch(project, *FSDP, train_args=("--resume", run.run_id))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming run" in resumed.stdout
    record = registry.get_run(run.run_id)
    assert record.status == "completed" and record.metrics["resumed_at_steps"] == [3]
    mine = load_file(str(config.state_dir / "runs" / run.run_id / "adapter" / "adapter_model.safetensors"))
    theirs = load_file(str(single.adapter_dir / "adapter_model.safetensors"))
    moved = max(float(theirs[k].abs().max()) for k in theirs if "lora_B" in k)
    worst = max(float((mine[k] - theirs[k]).abs().max()) for k in mine)
    print(f"largest weight difference, FSDP killed and resumed vs 1 process: {worst:.2e}")
    assert worst < 1e-4 * max(1.0, moved)


def _accelerate_launch(
    project: Path, *launch: str, extra_env: dict[str, str] | None = None, train_args: tuple[str, ...] = ()
) -> Any:
    launcher = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert launcher, "accelerate is a dependency of slmkit"
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", **(extra_env or {})}
    command = [
        launcher,
        "launch",
        *launch,
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        "-m",
        "slmkit",
        "train",
        "-p",
        str(project),
        "-q",
        *train_args,
    ]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_gradients_summed_across_processes_equal_one_process_gradient(tmp_path):
    """The all-reduce itself, on two real gloo processes: the summed shard gradients equal the whole batch's."""
    script = tmp_path / "worker.py"
    script.write_text(
        "import os, sys, torch\n"
        "sys.path.insert(0, os.environ['SRC'])\n"
        "from slmkit.train.distributed import World\n"
        "world = World.from_env()\n"
        "torch.manual_seed(0)\n"
        "layer = torch.nn.Linear(3, 2)\n"
        "x = torch.arange(12.0).reshape(4, 3)\n"
        "rows = world.shard(list(range(4)))\n"
        "layer(x[rows]).sum().backward()\n"
        "params = list(layer.parameters())\n"
        "world.sum_gradients(params)\n"
        "full = torch.nn.Linear(3, 2)\n"
        "full.load_state_dict(layer.state_dict())\n"
        "full(x).sum().backward()\n"
        "assert all(torch.allclose(p.grad, q.grad) for p, q in zip(params, full.parameters()))\n"
        "assert world.sum(float(world.rank + 1)) == [3.0]\n"
        "print('rank', world.rank, 'of', world.size, 'ok', world.share(f'from {world.rank}'))\n"
        "world.close()\n"
    )
    env = {**os.environ, "SRC": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    launched = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            str(_free_port()),
            str(script),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert launched.stdout.count("ok from 0") == 2, launched.stdout


def test_a_deepspeed_launch_is_refused_rather_than_run_as_something_else(monkeypatch):
    from slmkit.errors import StageError

    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(StageError, match="deepspeed") as caught:
        World.from_env()
    assert "--use_fsdp" in caught.value.hint
