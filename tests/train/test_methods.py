"""The training methods: QLoRA on a 4-bit SmolLM2, full fine-tuning that eval and serving load,
LoRA and DoRA through the recipe, the memory estimate logged first, and the preset suggestion."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file

from slmkit.config import TrainConfig, load_config
from slmkit.data import run_data_build
from slmkit.models import load_model, load_tokenizer, resolve_base_model
from slmkit.models.load import FULL_WEIGHTS_MARKER, attach_adapter
from slmkit.task import Task
from slmkit.train import run_train
from slmkit.train.batches import collate, encode_example
from slmkit.train.loss import answer_loss
from slmkit.train.methods import (
    estimate_memory,
    model_shape,
    prepare_model,
    preset_for,
    preset_suggestion,
    save_trained,
)
from tests.conftest import EXAMPLE, write_project
from tests.greedy import greedy_ids

ANSWER = {"category": "shipping", "priority": "normal", "order_id": "ORD-482913", "product": None}
TICKETS = [
    "Subject: where is it\n\nMy parcel ORD-482913 has not arrived.",
    "Subject: login\n\nI cannot log in to my account since the password reset.",
]


def _batch(tokenizer) -> dict:
    task = Task.from_config(load_config(EXAMPLE, check_files=False))
    return collate([encode_example(task, tokenizer, t, ANSWER, 256) for t in TICKETS], tokenizer.pad_token_id)


def _train_steps(model, batch: dict, steps: int, lr: float) -> list[float]:
    """`steps` AdamW steps on the same batch; its answer loss before each step."""
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    losses = []
    model.train()
    for _ in range(steps):
        loss, n = answer_loss(model, batch)
        (loss / n).backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()) / n)
    model.eval()
    return losses


@pytest.mark.slow
def test_qlora_trains_smollm2_with_a_4bit_base(smollm2_ref):
    from bitsandbytes.nn import Linear4bit

    lines: list[str] = []
    cfg = TrainConfig(method="qlora", learning_rate=2e-3, batch_size=2)
    model = prepare_model(smollm2_ref, cfg, lines.append)
    assert lines[0].startswith("memory estimate (qlora): weights ")

    layers = model.get_base_model().model.layers
    assert isinstance(layers[0].self_attn.q_proj.base_layer, Linear4bit)
    assert isinstance(layers[-1].mlp.down_proj.base_layer, Linear4bit)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable), "only the adapters train"
    assert all(p.dtype == torch.float32 for n, p in model.named_parameters() if n in trainable)
    frozen_4bit = layers[3].mlp.up_proj.base_layer.weight.detach().clone()

    batch = _batch(load_tokenizer(smollm2_ref, padding_side="right"))
    model.eval()
    with torch.no_grad():  # as the recipe's first validation pass: it must not change how training runs
        answer_loss(model, batch)
    losses = _train_steps(model, batch, steps=3, lr=cfg.learning_rate)
    print("qlora answer loss per step:", [round(x, 3) for x in losses])
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0], "three steps on the same batch must lower its loss"
    assert torch.equal(layers[3].mlp.up_proj.base_layer.weight, frozen_4bit), "the 4-bit base stays frozen"
    # Gradients reach the first layer's query adapter only back through every 4-bit layer above it.
    assert layers[0].self_attn.q_proj.lora_B["default"].weight.abs().sum() > 0


def test_full_fine_tuning_saves_weights_that_load_and_answer_like_the_trained_model(tiny_model_dir, tmp_path):
    ref = resolve_base_model(str(tiny_model_dir))
    tokenizer = load_tokenizer(ref, padding_side="right")
    lines: list[str] = []
    cfg = TrainConfig(method="full", learning_rate=0.05)
    model = prepare_model(ref, cfg, lines.append)
    assert lines[0].startswith("memory estimate (full): weights ") and " + gradients " in lines[0]
    assert all(p.requires_grad for p in model.parameters())
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    losses = _train_steps(model, _batch(tokenizer), steps=3, lr=cfg.learning_rate)
    assert losses[-1] < losses[0]
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert "model.embed_tokens.weight" in moved and any("layers.1.mlp" in n for n in moved)

    out = tmp_path / "adapter"
    save_trained(model, out, "full")
    assert json.loads((out / FULL_WEIGHTS_MARKER).read_text())["method"] == "full"
    expected = greedy_ids(model, tokenizer, TICKETS, 10)
    # As eval and serving load it, and attached to an already loaded base.
    assert greedy_ids(load_model(ref, adapter=out), tokenizer, TICKETS, 10) == expected
    assert greedy_ids(attach_adapter(load_model(ref), out), tokenizer, TICKETS, 10) == expected
    base_answers = greedy_ids(load_model(ref), tokenizer, TICKETS, 10)
    assert base_answers != expected, "the fine-tuned answers differ from the base"


def test_a_full_run_goes_through_eval_and_serving(tmp_path, tiny_model_dir):
    from slmkit.eval import run_eval
    from slmkit.serve.releases import ModelCache
    from tests.serve.conftest import release_adapter

    project = write_project(
        tmp_path / "p",
        tiny_model_dir,
        rows=40,
        overrides={
            "train.method": "full",
            "train.max_steps": 3,
            "train.batch_size": 4,
            "train.eval_every": 3,
            "train.learning_rate": 0.01,
            "train.replay.max_new_tokens": 8,
            "eval.max_items": 4,
            "eval.max_new_tokens": 8,
            "eval.gates": ["schema_validity >= 0.0"],
        },
    )
    config = load_config(project)
    run_data_build(config)
    lines: list[str] = []
    result = run_train(config, progress=False, log=lines.append)
    assert any(line.startswith("memory estimate (full):") for line in lines)
    saved = load_file(str(result.adapter_dir / "model.safetensors"))
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    assert saved.keys() == base.keys() and any(not torch.equal(saved[k], base[k]) for k in base)

    report = run_eval(config, progress=False, log=lambda _: None)
    assert report.items == 4 and "adapter" in report.metrics

    loaded = ModelCache(config.state_dir, config.root).get(release_adapter(config, result.adapter_dir, tiny_model_dir))
    model = loaded.generator.model  # the transformers engine's model, the full weights loaded
    served = {n: p.float() for n, p in model.state_dict().items()}
    dtypes = {p.dtype for p in model.parameters()}
    differ = [k for k in saved if not torch.equal(served[k], saved[k].to(*dtypes).float())]
    assert not differ, (dtypes, differ[:3], [(served[k] - saved[k]).abs().max() for k in differ[:3]])


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_lora_and_dora_runs_log_their_memory_and_save_a_peft_adapter(tiny_project, method):
    config = load_config(tiny_project)
    config.train.method = method
    config.train.replay.max_new_tokens = 8
    run_data_build(config)
    lines: list[str] = []
    result = run_train(config, progress=False, log=lines.append)

    memory = next(line for line in lines if line.startswith("memory estimate"))
    assert memory.startswith(f"memory estimate ({method}): weights ") and "activations ~" in memory
    adapter_config = json.loads((result.adapter_dir / "adapter_config.json").read_text())
    assert adapter_config["use_dora"] is (method == "dora")
    weights = load_file(str(result.adapter_dir / "adapter_model.safetensors"))
    assert any("lora_B" in n and t.abs().sum() > 0 for n, t in weights.items())
    assert any("magnitude" in n for n in weights) is (method == "dora")
    assert not (result.adapter_dir / FULL_WEIGHTS_MARKER).exists()


def test_memory_estimate_ranks_the_methods_as_they_cost(smollm2_ref):
    shape = model_shape(smollm2_ref)
    assert shape.n_params == 134_515_008 and shape.layers == 30 and len(shape.linear_shapes) == 7 * 30

    def estimate(method, precision="fp32", targets="all-linear"):
        return estimate_memory(
            shape.n_params,
            method,
            16,
            shape.target_shapes(targets),
            256,
            4,
            precision,
            hidden=shape.hidden,
            intermediate=shape.intermediate,
            layers=shape.layers,
            vocab=shape.vocab,
            quantized_params=shape.linear_params,
        )

    lora, dora, qlora, full = (estimate(m) for m in ("lora", "dora", "qlora", "full"))
    assert lora["adapter"] == 4 * 16 * sum(i + o for i, o in shape.linear_shapes.values())
    assert dora["adapter"] > lora["adapter"] and dora["weights"] == lora["weights"]
    assert qlora["weights"] < lora["weights"] / 3, "4-bit linear layers"
    assert full["optimizer"] == 8 * shape.n_params and full["gradients"] == 4 * shape.n_params
    assert full["total"] > lora["total"] > qlora["total"]
    assert estimate("lora", targets=["q_proj", "v_proj"])["adapter"] < lora["adapter"] / 3
    assert estimate("lora", "bf16")["activations"] < lora["activations"]
    for parts in (lora, dora, qlora, full):
        assert parts["total"] == pytest.approx(sum(v for k, v in parts.items() if k != "total"))


def test_presets_only_suggest_and_never_override(smollm2_ref):
    assert preset_for(135_000_000)["learning_rate"] == 1e-3 and preset_for(8_000_000_000)["r"] == 32
    assert preset_suggestion(135_000_000, TrainConfig()) is None, "the defaults fit a 135M model"
    line = preset_suggestion(8_000_000_000, TrainConfig(learning_rate=1e-3))
    assert line and "8.0B" in line and "learning_rate 0.001 (preset 0.0001)" in line and "kept as set" in line
    full = preset_suggestion(135_000_000, TrainConfig(method="full"))
    assert full and "learning_rate 0.001 (preset 5e-05)" in full and "lora.r" not in full


def test_the_same_adapter_gets_the_same_bytes_whatever_the_hash_seed(tmp_path, tiny_model_dir):
    """PEFT lists target modules from a set; unsorted, the adapter's content hash would change per process."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import sys, torch\n"
        "from pathlib import Path\n"
        "from slmkit.config import TrainConfig\n"
        "from slmkit.models import load_model, resolve_base_model\n"
        "from slmkit.train.methods import make_trainable, save_trained\n"
        "torch.manual_seed(0)\n"
        "cfg = TrainConfig()\n"
        "model = make_trainable(load_model(resolve_base_model(sys.argv[1], Path('.'))), cfg)\n"
        "save_trained(model, Path(sys.argv[2]), cfg.method)\n"
    )
    src = str(Path(__file__).resolve().parents[2] / "src")
    configs = []
    for seed in ("1", "2", "3"):
        out = tmp_path / f"adapter-{seed}"
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": src}
        done = subprocess.run(
            [sys.executable, "-c", script, str(tiny_model_dir), str(out)], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        configs.append((out / "adapter_config.json").read_bytes())
    assert configs[0] == configs[1] == configs[2]
    assert json.loads(configs[0])["target_modules"] == sorted(json.loads(configs[0])["target_modules"])
