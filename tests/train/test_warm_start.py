"""Warm start (monitor.retrain.warm_start): a run starts from the production adapter's weights, and an
adapter of another shape is refused with what to change."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from slmkit.config import load_config
from slmkit.data import run_data_build
from slmkit.errors import StageError
from slmkit.models import resolve_base_model
from slmkit.train import run_train
from slmkit.train.methods import load_base, make_trainable, warm_start


def test_a_warm_start_begins_from_the_saved_adapter_and_refuses_another_shape(tiny_project):
    config = load_config(tiny_project)
    run_data_build(config)
    first = run_train(config, progress=False, log=lambda _: None)
    saved = load_file(str(first.adapter_dir / "adapter_model.safetensors"))
    base = resolve_base_model(config.base_model, config.root)

    model = make_trainable(load_base(base, config.train, lambda _: None, []), config.train)
    lines: list[str] = []
    warm_start(model, first.adapter_dir, lines.append)
    loaded = {n.replace(".default", ""): p for n, p in model.named_parameters() if p.requires_grad}
    assert len(loaded) == len(saved) and lines[0].startswith(f"warm start: {len(saved)} adapter tensors")
    for name, weight in saved.items():
        assert torch.equal(loaded[name], weight), name

    # The run records where it started from; its first validation loss is the saved adapter's.
    second = run_train(config, progress=False, log=lambda _: None, init_adapter=first.adapter_dir)
    assert second.metrics["initial_val_loss"] == pytest.approx(first.metrics["best_val_loss"], rel=1e-4)
    recorded = (second.run_dir / "config.json").read_text()
    assert str(first.adapter_dir) in recorded

    other = config.train.model_copy(update={"lora": config.train.lora.model_copy(update={"r": 4})})
    smaller = make_trainable(load_base(base, other, lambda _: None, []), other)
    with pytest.raises(StageError, match="does not have this run's LoRA shape") as caught:
        warm_start(smaller, first.adapter_dir, lines.append)
    assert "lora.r" in caught.value.hint
