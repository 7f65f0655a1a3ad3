"""The Gemma 3 side of the GGUF export (slmkit.models.gguf_export writes the file).

What differs from Llama, each easy to get silently wrong:

- Norms. Gemma's RMSNorm multiplies by (1 + weight); llama.cpp's Gemma graphs multiply by the
  stored weight, so every `*norm.weight` is written plus one (transformers' GGUF reader takes
  the one off again; the q/k norms included).
- RoPE. llama.cpp's Gemma rotates the two halves of each head, as transformers does: the q/k
  rows are written as they are (the Llama path reorders them).
- Two RoPE bases and a sliding window. Global layers rotate with `rope_parameters.
  full_attention.rope_theta` (written as rope.freq_base); the sliding layers' base (10,000) and
  their pattern (every sixth layer global) are llama.cpp's built-in Gemma 3 values, so a model
  whose config says otherwise is refused rather than written wrong.
- The tokenizer. Gemma's is a SentencePiece model (llama.cpp's `llama` tokenizer: pieces with
  scores and types), not the byte-level BPE the Llama path writes. A built-in Gemma base was
  converted from a GGUF (slmkit.models.resolve), whose own tokenizer entries are copied as they
  are: pieces, scores, types and special ids are exactly what llama.cpp shipped.
- Output. The embedding is tied (no output.weight) and llama.cpp scales it by sqrt(hidden)
  itself, as transformers does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slmkit.errors import ModelError

ARCHITECTURE = "Gemma3ForCausalLM"
_SLIDING_THETA = 10000.0  # llama.cpp's built-in base for Gemma 3's sliding-window layers
_GLOBAL_EVERY = 6  # llama.cpp's built-in Gemma 3 pattern: layers 5, 11, 17, ... attend globally
_TOKENIZER_KEYS = (  # copied from the source GGUF as they are
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.scores",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.unknown_token_id",
    "tokenizer.ggml.padding_token_id",
    "tokenizer.ggml.add_bos_token",
    "tokenizer.ggml.add_eos_token",
    "tokenizer.ggml.add_sep_token",
    "tokenizer.ggml.add_space_prefix",
)


def hyperparameters(config: dict[str, Any], path: Path) -> dict[str, Any]:
    """The Gemma 3 settings the file needs, or a ModelError naming what llama.cpp would compute differently."""
    layers = int(config["num_hidden_layers"])
    rope = config.get("rope_parameters") or {}
    full = rope.get("full_attention") or {}
    sliding = rope.get("sliding_attention") or {}
    expected = ["full_attention" if (i + 1) % _GLOBAL_EVERY == 0 else "sliding_attention" for i in range(layers)]
    problems = []
    if config.get("layer_types") and list(config["layer_types"]) != expected:
        problems.append(f"layer_types is not llama.cpp's Gemma 3 pattern (every {_GLOBAL_EVERY}th layer global)")
    if float(sliding.get("rope_theta", _SLIDING_THETA)) != _SLIDING_THETA:
        problems.append(
            f"the sliding layers' rope_theta is {sliding['rope_theta']} (llama.cpp uses {_SLIDING_THETA:g})"
        )
    if (full.get("rope_type") or "default") != "default" or (sliding.get("rope_type") or "default") != "default":
        problems.append("RoPE scaling is set (not written for Gemma 3)")
    head_dim = int(config.get("head_dim") or 256)
    if int(config.get("query_pre_attn_scalar") or head_dim) != head_dim:
        problems.append("query_pre_attn_scalar differs from head_dim (llama.cpp scales by 1/sqrt(head_dim))")
    for key in ("attn_logit_softcapping", "final_logit_softcapping"):
        if config.get(key):
            problems.append(f"{key} is set")
    if config.get("hidden_activation", "gelu_pytorch_tanh") != "gelu_pytorch_tanh":
        problems.append(f"hidden_activation is {config['hidden_activation']!r} (llama.cpp's Gemma uses tanh GELU)")
    if problems:
        raise ModelError(f"{path}: cannot export to GGUF: {'; '.join(problems)}", hint="export --format merged")
    return {
        "arch": "gemma3",
        "vocab_size": int(config["vocab_size"]),
        "context_length": int(config.get("max_position_embeddings", 32768)),
        "hidden": int(config["hidden_size"]),
        "layers": layers,
        "ffn": int(config["intermediate_size"]),
        "heads": int(config["num_attention_heads"]),
        "kv_heads": int(config.get("num_key_value_heads") or config["num_attention_heads"]),
        "head_dim": head_dim,
        "rms_eps": float(config.get("rms_norm_eps", 1e-6)),
        "rope_theta": float(full.get("rope_theta", config.get("rope_theta", 1_000_000.0))),
        "sliding_window": int(config.get("sliding_window") or 512),
        "tied": bool(config.get("tie_word_embeddings", True)),
        "path": path,
    }


def vocabulary(model_dir: Path, source_gguf: Path | None, vocab_size: int) -> dict[str, Any]:
    """The source GGUF's tokenizer entries (key -> (value, gguf value type)), and the chat template."""
    import gguf
    from transformers import AutoTokenizer

    if source_gguf is None or not Path(source_gguf).exists():
        raise ModelError(
            f"{model_dir}: the GGUF export of a Gemma 3 model copies the tokenizer from the GGUF the base was "
            f"converted from, and there is none{f' at {source_gguf}' if source_gguf else ''}",
            hint="use the built-in gemma3-270m base (or a Gemma 3 .gguf file as base_model), or export --format merged",
        )
    reader = gguf.GGUFReader(source_gguf)
    entries: dict[str, tuple[Any, Any]] = {}
    for key in _TOKENIZER_KEYS:
        found = reader.get_field(key)
        if found is not None:
            entries[key] = (found.contents(), found.types[-1] if found.types else None)
    tokens = entries.get("tokenizer.ggml.tokens", ([], None))[0]
    if len(tokens) != vocab_size:
        raise ModelError(
            f"{source_gguf}: {len(tokens)} tokens, but the model's vocab_size is {vocab_size}",
            hint="the source GGUF does not belong to these weights",
        )
    template = AutoTokenizer.from_pretrained(model_dir).chat_template
    return {"entries": entries, "chat_template": template.get("default") if isinstance(template, dict) else template}


def write_metadata(writer: Any, hp: dict[str, Any], vocab: dict[str, Any]) -> None:
    """Gemma 3's own header keys and its vocabulary (the shared ones are written before)."""
    writer.add_key_length(hp["head_dim"])
    writer.add_value_length(hp["head_dim"])
    writer.add_rope_freq_base(hp["rope_theta"])
    writer.add_sliding_window(hp["sliding_window"])
    for key, (value, kind) in vocab["entries"].items():
        if isinstance(value, list):
            writer.add_array(key, value)
        elif kind is not None:
            writer.add_key_value(key, value, kind)
    if vocab["chat_template"]:
        writer.add_chat_template(vocab["chat_template"])


def transform(key: str, array: Any) -> Any:
    """A weight as llama.cpp's Gemma 3 reads it: norms plus one, the rest as they are."""
    return array + 1.0 if key.endswith("norm.weight") else array


def skipped(key: str, hp: dict[str, Any]) -> bool:
    """Weights the file leaves out: the tied output projection."""
    return hp["tied"] and key == "lm_head.weight"
