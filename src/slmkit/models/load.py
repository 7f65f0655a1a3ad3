"""Load a resolved base model (and optionally an adapter) with transformers + PEFT.

A training run's `adapter/` folder holds either a PEFT adapter (LoRA, DoRA, QLoRA) or, after
full fine-tuning, the complete fine-tuned weights with a `full_weights.json` marker. Both load
through `load_model(ref, adapter=...)`, so eval, serving and the registry treat them alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slmkit.errors import ModelError
from slmkit.models.resolve import BaseModelRef

FULL_WEIGHTS_MARKER = "full_weights.json"  # in an adapter folder: complete weights, not a PEFT adapter


def load_tokenizer(ref: BaseModelRef, *, padding_side: str = "left") -> Any:
    """The model's tokenizer, with a pad token (eos when the model has none)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(ref.path)
    except Exception as exc:
        raise ModelError(f"cannot load the tokenizer of {ref.model_id} from {ref.path}: {exc}") from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_model(ref: BaseModelRef, *, adapter: Path | None = None, merge: bool = True, dtype: str = "float32") -> Any:
    """The base model in eval mode; with `adapter`, the adapter attached (merged by default).

    Merging folds the low-rank update into the weights: the same answers as base + adapter,
    at the base model's speed. Keep it unmerged to train further or to swap adapters. A merge
    happens in float32 and the result is cast to `dtype`, so the update is not rounded twice.
    """
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    # A per-tensor progress bar for a model that loads in a second is noise in every stage's output.
    hf_logging.disable_progress_bar()
    full = adapter is not None and is_full_weights(adapter)
    load_dtype = "float32" if adapter is not None and merge and not full else dtype
    # Fully fine-tuned weights replace the base's: load them in its place rather than twice.
    source = adapter if full and adapter is not None else ref.path
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=getattr(torch, load_dtype))
    except Exception as exc:
        raise ModelError(f"cannot load {ref.model_id} from {source}: {exc}") from exc
    if adapter is not None and not full:
        model = attach_adapter(model, adapter, merge=merge)
    if load_dtype != dtype:
        model = model.to(getattr(torch, dtype))
    model.eval()
    return model


def load_model_4bit(ref: BaseModelRef, *, compute_dtype: str = "float32", device: str = "cpu") -> Any:
    """The base with every linear layer but the output head in 4-bit NF4 (bitsandbytes), for QLoRA.

    Double quantization also stores the per-block scales in 8 bits (~0.4 bit per weight saved).
    The layers that stay unquantized (embeddings, norms, head) load in float32, as QLoRA trains
    them; the 4-bit matmuls run in `compute_dtype`.
    """
    import torch
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    quiet_bitsandbytes()
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=getattr(torch, compute_dtype),
        bnb_4bit_use_double_quant=True,
    )
    try:
        model = AutoModelForCausalLM.from_pretrained(
            ref.path, quantization_config=quantization, dtype=torch.float32, device_map={"": device}
        )
    except ImportError as exc:
        raise ModelError(
            f"cannot load {ref.model_id} in 4 bits: {exc}",
            hint="QLoRA needs bitsandbytes >= 0.50 (`pip install bitsandbytes`), or use method: lora",
        ) from exc
    except Exception as exc:
        raise ModelError(f"cannot load {ref.model_id} in 4 bits from {ref.path}: {exc}") from exc
    # On AVX512-BF16 CPUs bitsandbytes repacks a 4-bit weight for a faster inference kernel the
    # first time it runs in eval mode without gradients (a validation pass, a generation), and
    # keeps using that kernel afterwards, in training too. It has no backward: gradients then
    # stop at every 4-bit layer and most adapters silently stop learning. Keep the trainable layout.
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            setattr(module, "support_avx512bf16_for_cpu", False)  # noqa: B010 - a bitsandbytes attribute
    return model


def quiet_bitsandbytes() -> None:
    """Silence the warning bitsandbytes' CPU backend logs on import (PEFT imports it for every
    adapter) when it cannot fetch an optional fused kernel from the hub: offline that is expected."""
    import logging

    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)


def is_full_weights(adapter: Path) -> bool:
    """True when `adapter` holds fully fine-tuned weights (see FULL_WEIGHTS_MARKER), not a PEFT adapter."""
    return (Path(adapter) / FULL_WEIGHTS_MARKER).exists()


def attach_adapter(model: Any, adapter: Path, *, merge: bool = True) -> Any:
    """`model` with the adapter in `adapter` attached (merged by default), or with its weights
    replaced by the fully fine-tuned ones when the folder holds those."""
    quiet_bitsandbytes()
    from peft import PeftModel

    if is_full_weights(adapter):
        return _load_full_weights(model, adapter)
    if not (adapter / "adapter_config.json").exists():
        raise ModelError(f"{adapter} is not a PEFT adapter (no adapter_config.json) nor fine-tuned weights")
    try:
        peft_model = PeftModel.from_pretrained(model, adapter)
    except Exception as exc:
        raise ModelError(
            f"cannot attach the adapter in {adapter}: {exc}",
            hint="an adapter only loads on the base model it was trained on",
        ) from exc
    return peft_model.merge_and_unload() if merge else peft_model


def _load_full_weights(model: Any, folder: Path) -> Any:
    """Copy fully fine-tuned weights into `model` (same architecture), in place."""
    import torch
    from transformers import AutoModelForCausalLM

    try:
        trained = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    except Exception as exc:
        raise ModelError(f"cannot load the fine-tuned weights in {folder}: {exc}") from exc
    try:
        model.load_state_dict(trained.state_dict(), strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"the fine-tuned weights in {folder} do not fit this model: {exc}",
            hint="fine-tuned weights only load on the base model they were trained from",
        ) from exc
    return model
