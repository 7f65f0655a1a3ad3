"""Base models: resolve (alias, directory, GGUF, hub id), load, attach adapters, tiny test models."""

from slmkit.models.load import attach_adapter, load_model, load_tokenizer
from slmkit.models.resolve import BUILTIN_MODELS, BaseModelRef, cache_dir, resolve_base_model

__all__ = [
    "BUILTIN_MODELS",
    "BaseModelRef",
    "attach_adapter",
    "cache_dir",
    "load_model",
    "load_tokenizer",
    "resolve_base_model",
]
