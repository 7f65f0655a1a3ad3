"""The training methods: which weights train, and what that costs in memory before it starts.

- lora / dora: a frozen float32 base with low-rank adapters (PEFT); DoRA also learns a
  magnitude per output channel.
- qlora: the base's linear layers in 4-bit NF4 (bitsandbytes, double-quantized), frozen; the
  adapters and the layers that stay unquantized (embeddings, norms) in float32.
- full: every weight trains. The run's `adapter/` folder then holds the complete fine-tuned
  weights and a marker (slmkit.models.load.FULL_WEIGHTS_MARKER), so eval and serving load it
  like an adapter and the registry stores it the same way.

Memory is estimated from the model's config alone (a meta-device copy, no weights read) and
logged before anything loads, so a run that cannot fit says so first. The preset table gives
a starting point by model size; it only prints a suggestion, it never overrides a setting.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from slmkit.config import TrainConfig
from slmkit.errors import StageError
from slmkit.models.load import FULL_WEIGHTS_MARKER, load_model, load_model_4bit, quiet_bitsandbytes
from slmkit.models.precision import resolve_precision
from slmkit.models.resolve import BaseModelRef
from slmkit.train.batches import Encoded

Method = Literal["lora", "dora", "qlora", "full"]

# NF4 stores 4 bits per weight plus one scale per 64-weight block; double quantization stores
# those scales in 8 bits with a float32 scale per 256 blocks: 4 + 8/64 + 32/(64*256) bits.
NF4_BYTES_PER_WEIGHT = (4 + 8 / 64 + 32 / (64 * 256)) / 8

# Bytes kept for the backward pass per token and per decoder layer, as multiples of the hidden
# and the MLP sizes: the inputs of every matmul (LoRA's included), the norm and attention
# intermediates, the residual stream. Measured on SmolLM2 with this recipe (see the tests);
# a rough figure, good to a factor of ~1.5.
_ACT_PER_HIDDEN = {"fp32": 64, "bf16": 48}
_ACT_PER_INTERMEDIATE = {"fp32": 24, "bf16": 16}
_LOGIT_COPIES = 3  # logits, their float32 softmax and its gradient, on answer tokens only

# Starting points by model size, for LoRA-family methods (full fine-tuning uses
# `full_learning_rate`). `batch_size` is the effective batch: batch_size x grad_accum.
# Smaller models take (and need) higher learning rates; larger ones gain from a larger rank.
#   up to       r   alpha  learning_rate  full_learning_rate  batch   e.g.
#   250M       16     32      1e-3            5e-5             8     SmolLM2-135M/360M
#   800M       16     32      5e-4            3e-5             8     Qwen2.5-0.5B
#   2B         16     32      3e-4            2e-5            16     Qwen2.5-1.5B, SmolLM2-1.7B
#   4.5B       32     64      2e-4            1e-5            16     Llama-3.2-3B, Phi-3.5-mini
#   8B+        32     64      1e-4            1e-5            16     Llama-3.1-8B, Qwen2.5-7B
PRESETS: tuple[tuple[float, dict[str, float]], ...] = (
    (250e6, {"r": 16, "alpha": 32, "learning_rate": 1e-3, "full_learning_rate": 5e-5, "batch_size": 8}),
    (800e6, {"r": 16, "alpha": 32, "learning_rate": 5e-4, "full_learning_rate": 3e-5, "batch_size": 8}),
    (2e9, {"r": 16, "alpha": 32, "learning_rate": 3e-4, "full_learning_rate": 2e-5, "batch_size": 16}),
    (4.5e9, {"r": 32, "alpha": 64, "learning_rate": 2e-4, "full_learning_rate": 1e-5, "batch_size": 16}),
    (float("inf"), {"r": 32, "alpha": 64, "learning_rate": 1e-4, "full_learning_rate": 1e-5, "batch_size": 16}),
)
_FAR = 4.0  # a setting this many times above or below the preset earns a suggestion line


@dataclass(frozen=True)
class ModelShape:
    """What the memory estimate needs to know about a model, read from its config."""

    n_params: int
    hidden: int
    intermediate: int
    layers: int
    vocab: int
    linear_shapes: dict[str, tuple[int, int]]  # (in, out) of every linear layer but the output head

    @property
    def linear_params(self) -> int:
        return sum(i * o for i, o in self.linear_shapes.values())

    def target_shapes(self, target_modules: Sequence[str] | str) -> list[tuple[int, int]]:
        """The (in, out) shapes PEFT adapts for `target_modules` ("all-linear" or module names)."""
        if target_modules == "all-linear":
            return list(self.linear_shapes.values())
        names = [target_modules] if isinstance(target_modules, str) else list(target_modules)
        return [
            shape
            for path, shape in self.linear_shapes.items()
            if any(path == n or path.endswith("." + n) for n in names)
        ]


def prepare_model(
    base_ref: BaseModelRef,
    cfg: TrainConfig,
    log: Callable[[str], None] = print,
    examples: Sequence[Encoded] = (),
) -> Any:
    """The model `cfg.method` trains: the base loaded for it, then made trainable (see `load_base`)."""
    return make_trainable(load_base(base_ref, cfg, log, examples), cfg)


def load_base(
    base_ref: BaseModelRef,
    cfg: TrainConfig,
    log: Callable[[str], None] = print,
    examples: Sequence[Encoded] = (),
    *,
    device: str = "cpu",
) -> Any:
    """Log the memory estimate (and a preset suggestion), then load the base on `device` as
    `cfg.method` needs it: float32, or 4-bit NF4 for qlora. Nothing trains yet: `make_trainable`
    does that.

    The training `examples` size the activation estimate (the longest rows, the most answer
    tokens in one batch); without them it assumes `batch_size` rows of `max_seq_len`.
    """
    precision = resolve_precision(cfg.precision, device)
    seq_len = max((len(e.input_ids) for e in examples), default=cfg.max_seq_len)
    answers = sorted((e.answer_tokens for e in examples), reverse=True)[: cfg.batch_size]
    shape = model_shape(base_ref)
    estimate = estimate_memory(
        shape.n_params,
        cfg.method,
        cfg.lora.r,
        shape.target_shapes(cfg.lora.target_modules),
        seq_len,
        cfg.batch_size,
        precision,
        hidden=shape.hidden,
        intermediate=shape.intermediate,
        layers=shape.layers,
        vocab=shape.vocab,
        quantized_params=shape.linear_params,
        label_tokens=sum(answers) if answers else None,
    )
    log(memory_line(cfg.method, estimate))
    suggestion = preset_suggestion(shape.n_params, cfg)
    if suggestion:
        log(suggestion)
    if cfg.method == "qlora":
        return load_model_4bit(base_ref, compute_dtype="bfloat16" if precision == "bf16" else "float32", device=device)
    return load_model(base_ref).to(device)


def make_trainable(model: Any, cfg: TrainConfig) -> Any:
    """Full: every weight trains. Otherwise the base freezes and LoRA (or DoRA) adapters attach."""
    if cfg.method == "full":
        for param in model.parameters():
            param.requires_grad_(True)
        return model
    if cfg.method == "qlora":
        from peft import prepare_model_for_kbit_training

        # Freezes the base and keeps its unquantized layers in float32 (they load that way, so
        # nothing is cast twice). Gradient checkpointing stays off: it re-runs every forward
        # pass to save activations that, at these sequence lengths, are not what runs out.
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return _with_lora(model, cfg)


def _with_lora(model: Any, cfg: TrainConfig) -> Any:
    quiet_bitsandbytes()
    from peft import LoraConfig, get_peft_model

    peft_config = LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=cfg.lora.target_modules,
        use_dora=cfg.method == "dora",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_config)


def warm_start(model: Any, adapter_dir: Path, log: Callable[[str], None]) -> None:
    """Load a saved adapter's weights into the fresh LoRA of the same shape (rank, targets, method)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights_file = Path(adapter_dir) / "adapter_model.safetensors"
    if not weights_file.is_file():
        raise StageError(
            f"warm start: no adapter weights in {adapter_dir}",
            hint="warm start needs a LoRA or DoRA release; set monitor.retrain.warm_start: false",
        )
    saved = load_file(str(weights_file))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    problem = ""
    try:
        result: Any = set_peft_model_state_dict(model, saved)
    except RuntimeError as exc:  # torch names the tensors whose shapes differ
        problem = str(exc).splitlines()[-1].strip()
    else:
        missing = [k for k in result.missing_keys if k in trainable]
        if missing or result.unexpected_keys or len(saved) != len(trainable):
            problem = f"{len(saved)} saved tensors, {len(trainable)} trainable, {len(missing)} not loaded"
    if problem:
        raise StageError(
            f"warm start: the adapter in {adapter_dir} does not have this run's LoRA shape ({problem})",
            hint="warm start needs the same train.method, lora.r and lora.target_modules as the release; "
            "set monitor.retrain.warm_start: false to train a fresh adapter",
        )
    log(f"warm start: {len(saved)} adapter tensors loaded from {adapter_dir}")


def save_trained(model: Any, out_dir: Path, method: Method) -> None:
    """Write what trained into `out_dir`: the PEFT adapter, or the full weights plus their marker."""
    import json

    model.save_pretrained(str(out_dir))
    _stable_adapter_config(out_dir / "adapter_config.json")
    if method == "full":
        # Written last: the marker's presence means the weights beside it are complete.
        marker = {"method": "full", "format": "transformers safetensors (complete fine-tuned weights)"}
        (out_dir / FULL_WEIGHTS_MARKER).write_text(json.dumps(marker, indent=2) + "\n")


def _stable_adapter_config(path: Path) -> None:
    """PEFT writes `target_modules` from a set, in an order that changes with the process's hash
    seed; sorted, the same training gives the same bytes, so the adapter's content hash repeats."""
    import json

    if not path.exists():
        return
    config = json.loads(path.read_text())
    for key in ("target_modules", "modules_to_save", "exclude_modules"):
        if isinstance(config.get(key), list):
            config[key] = sorted(config[key])
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def model_shape(base_ref: BaseModelRef) -> ModelShape:
    """Parameter count and layer shapes from the config alone: the model is built on the meta device."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(base_ref.path)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    head = model.get_output_embeddings()
    linear_shapes = {
        name: (module.in_features, module.out_features)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head
    }
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = int(text.hidden_size)
    return ModelShape(
        n_params=sum(p.numel() for p in model.parameters()),
        hidden=hidden,
        intermediate=int(getattr(text, "intermediate_size", None) or 4 * hidden),
        layers=int(text.num_hidden_layers),
        vocab=int(text.vocab_size),
        linear_shapes=linear_shapes,
    )


def estimate_memory(
    n_params: int,
    method: Method,
    r: int,
    target_shapes: Sequence[tuple[int, int]],
    seq_len: int,
    batch: int,
    precision: Literal["fp32", "bf16"],
    *,
    hidden: int,
    intermediate: int,
    layers: int,
    vocab: int,
    quantized_params: int | None = None,
    label_tokens: int | None = None,
) -> dict[str, float]:
    """Bytes each part of a training step holds at its peak (AdamW: two float32 states per weight).

    Keys: weights, adapter, gradients, optimizer, activations, total. `quantized_params` (qlora)
    counts the weights stored in 4 bits (every linear layer but the head; default: the targets);
    `label_tokens` the answer tokens of a batch, the only rows the vocabulary projection runs on
    (default: every token).
    """
    adapter_params = sum(r * (i + o) for i, o in target_shapes)
    if method == "dora":
        adapter_params += sum(o for _, o in target_shapes)  # the learned magnitude per output channel
    if method == "qlora":
        quantized = quantized_params if quantized_params is not None else sum(i * o for i, o in target_shapes)
        weights = quantized * NF4_BYTES_PER_WEIGHT + (n_params - quantized) * 4
        cast_copies = (n_params - quantized) * 2 if precision == "bf16" else 0
    else:
        weights = n_params * 4
        # Under bf16 autocast every matmul weight is cast, and the copy is kept for the backward pass.
        cast_copies = n_params * 2 if precision == "bf16" else 0
    trainable = n_params if method == "full" else adapter_params
    tokens = batch * seq_len
    per_token_layer = _ACT_PER_HIDDEN[precision] * hidden + _ACT_PER_INTERMEDIATE[precision] * intermediate
    logits = (label_tokens if label_tokens is not None else tokens) * vocab * 4 * _LOGIT_COPIES
    parts = {
        "weights": float(weights + cast_copies),
        "adapter": float(0 if method == "full" else adapter_params * 4),
        "gradients": float(trainable * 4),
        "optimizer": float(trainable * 8),
        "activations": float(tokens * layers * per_token_layer + logits),
    }
    parts["total"] = sum(parts.values())
    return parts


def memory_line(method: str, estimate: dict[str, float]) -> str:
    """`memory estimate (qlora): weights 0.12 GB + adapter 0.02 GB + ... = ~0.45 GB`."""
    terms = [
        f"{name} {estimate[name] / 1e9:.2f} GB"
        for name in ("weights", "adapter", "gradients", "optimizer")
        if estimate[name] or name == "weights"
    ]
    terms.append(f"activations ~{estimate['activations'] / 1e9:.2f} GB")
    return f"memory estimate ({method}): {' + '.join(terms)} = ~{estimate['total'] / 1e9:.2f} GB"


def preset_for(n_params: int) -> dict[str, float]:
    """The preset row (r, alpha, learning_rate, full_learning_rate, batch_size) for a model this size."""
    for limit, preset in PRESETS:
        if n_params <= limit:
            return dict(preset)
    return dict(PRESETS[-1][1])


def preset_suggestion(n_params: int, cfg: TrainConfig) -> str | None:
    """One line naming the settings that are far (4x or more) from the preset, or None."""
    preset = preset_for(n_params)
    lr_key = "full_learning_rate" if cfg.method == "full" else "learning_rate"
    checks: list[tuple[str, float, float]] = [
        ("learning_rate", cfg.learning_rate, preset[lr_key]),
        ("batch_size x grad_accum", cfg.batch_size * cfg.grad_accum, preset["batch_size"]),
    ]
    if cfg.method != "full":
        checks.append(("lora.r", cfg.lora.r, preset["r"]))
    far = [
        f"{name} {_number(yours)} (preset {_number(suggested)})"
        for name, yours, suggested in checks
        if not 1 / _FAR < yours / suggested < _FAR
    ]
    if not far:
        return None
    size = f"{n_params / 1e9:.1f}B" if n_params >= 1e9 else f"{n_params / 1e6:.0f}M"
    shape = "" if cfg.method == "full" else f"r {preset['r']:.0f}, alpha {preset['alpha']:.0f}, "
    return (
        f"suggestion: the {cfg.method} preset for a {size}-parameter model is {shape}"
        f"learning_rate {_number(preset[lr_key])}, batch {preset['batch_size']:.0f}; "
        f"far from it: {', '.join(far)} (kept as set)"
    )


def _number(value: float) -> str:
    return f"{value:g}"
