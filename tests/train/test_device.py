"""`train.device`: the CPU here (no GPU), and a clear refusal when a GPU is demanded but absent."""

from __future__ import annotations

import json

import pytest
import torch

from slmkit.config import load_config
from slmkit.data import run_data_build
from slmkit.errors import ModelError
from slmkit.models.device import device_type, pick_device
from slmkit.registry import Registry
from slmkit.train import run_train
from tests.conftest import write_project

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machines without a GPU")


@no_gpu
def test_auto_trains_on_the_cpu_when_torch_sees_no_gpu():
    assert pick_device("auto") == pick_device("cpu") == "cpu"
    assert device_type("cuda:1") == "cuda" and device_type("cpu") == "cpu"


@no_gpu
def test_demanding_a_gpu_that_is_not_there_fails_before_a_run_is_recorded(tmp_path, tiny_model_dir):
    project = write_project(tmp_path / "p", tiny_model_dir, overrides={"train.max_steps": 1, "train.device": "cuda"})
    config = load_config(project)
    run_data_build(config)
    with pytest.raises(ModelError, match=r"train\.device is cuda, but torch sees no CUDA device") as caught:
        run_train(config, progress=False, log=lambda _: None)
    assert "train.device: auto" in (caught.value.hint or "")
    with Registry(config.state_dir) as registry:
        assert registry.list_runs(config.task.name) == []

    config.train.device = "cpu"
    result = run_train(config, progress=False, log=lambda _: None)
    hardware = json.loads((result.run_dir / "run.json").read_text())["hardware"]
    assert hardware["device"] == "cpu" and hardware["gpu"] is None
