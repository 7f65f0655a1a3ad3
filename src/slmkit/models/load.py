"""Load a resolved base model (and optionally an adapter) with transformers + PEFT."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slmkit.errors import ModelError
from slmkit.models.resolve import BaseModelRef


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
    load_dtype = "float32" if adapter is not None and merge else dtype
    try:
        model = AutoModelForCausalLM.from_pretrained(ref.path, dtype=getattr(torch, load_dtype))
    except Exception as exc:
        raise ModelError(f"cannot load {ref.model_id} from {ref.path}: {exc}") from exc
    if adapter is not None:
        model = attach_adapter(model, adapter, merge=merge)
    if load_dtype != dtype:
        model = model.to(getattr(torch, dtype))
    model.eval()
    return model


def attach_adapter(model: Any, adapter: Path, *, merge: bool = True) -> Any:
    from peft import PeftModel

    if not (adapter / "adapter_config.json").exists():
        raise ModelError(f"{adapter} is not a PEFT adapter (no adapter_config.json)")
    try:
        peft_model = PeftModel.from_pretrained(model, adapter)
    except Exception as exc:
        raise ModelError(
            f"cannot attach the adapter in {adapter}: {exc}",
            hint="an adapter only loads on the base model it was trained on",
        ) from exc
    return peft_model.merge_and_unload() if merge else peft_model
