"""A few training steps on the real SmolLM2-135M-Instruct: the loss on held-out answers drops."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from slmkit.config import load_config
from slmkit.data import run_data_build
from slmkit.registry import Registry
from slmkit.train import run_train
from tests.conftest import write_project


@pytest.mark.slow
def test_lora_on_real_smollm2_lowers_validation_loss(tmp_path):
    project = write_project(
        tmp_path / "p",
        "smollm2-135m-instruct",
        rows=80,
        overrides={
            "train.max_steps": 4,
            "train.batch_size": 4,
            "train.eval_every": 4,
            "train.max_validation_rows": 8,
            "train.learning_rate": 0.002,
            "train.replay.max_new_tokens": 16,  # the drift check's base answers: short ones suffice here
        },
    )
    config = load_config(project)
    run_data_build(config)
    result = run_train(config, progress=False)
    m = result.metrics
    print(json.dumps(m, indent=2))
    assert m["steps"] == 4 and m["shared_prefix_tokens"] > 100
    assert m["best_val_loss"] < m["initial_val_loss"] * 0.8, "4 LoRA steps should cut the answer loss clearly"
    weights = load_file(result.adapter_dir / "adapter_model.safetensors")
    assert any("lora_B" in name and t.abs().sum() > 0 for name, t in weights.items())
    run = Registry(config.state_dir).get_run(result.run_id)
    assert run.adapter_digest == result.adapter_digest
    assert run.base_model["model_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert run.metrics["prompt_sha256"]
