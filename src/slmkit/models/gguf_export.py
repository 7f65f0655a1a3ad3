"""Write a Llama- or Gemma 3-architecture transformers model as one GGUF file for llama.cpp and Ollama.

Our own converter, built on the `gguf` package's writer and tensor names. Three things differ
from the transformers layout and are easy to get silently wrong:

- RoPE. transformers rotates the two halves of each head (dimension i pairs with i + d/2);
  llama.cpp's Llama rotates adjacent pairs (2i with 2i+1). The rows of q_proj and k_proj are
  reordered per head so both compute the same attention.
- The tokenizer. A byte-level BPE (tokenizer.json) becomes token strings, token types and
  merges, plus the name of the pre-tokenizer llama.cpp must split text with before BPE.
- Norm weights stay float32 whatever the file's type; llama.cpp expects them so.

Gemma 3 differs again (norms, RoPE layout, a SentencePiece tokenizer): see slmkit.models.gguf_gemma.

Quantized files (Q8_0, Q4_K_M) are made from the float GGUF by llama.cpp's own quantizer,
through llama-cpp-python, which also answers prompts greedily to check an export.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmkit.errors import ModelError
from slmkit.models import gguf_gemma

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM", gguf_gemma.ARCHITECTURE)
FLOAT_TYPES = ("f32", "f16")  # written here
QUANT_TYPES = {"q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0", "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}  # llama.cpp writes these
LLAMA_CPP_HINT = "pip install llama-cpp-python   (or `pip install 'slmkit[gguf]'`, which `make setup` does)"

# The split Llama 3's tokenizer.json makes before BPE (see derive_pre_tokenizer).
_LLAMA3_REGEX = (
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
)


@dataclass(frozen=True)
class GgufAnswer:
    text: str
    prompt_ids: list[int]  # the prompt as llama.cpp tokenized it
    completion_ids: list[int]  # the answer's tokens, without the end-of-generation token
    finished: bool  # ended on an end-of-generation token, not on the length limit


def write_gguf(
    model_dir: Path,
    out: Path,
    *,
    dtype: str = "f16",
    pre_tokenizer: str | None = None,
    name: str | None = None,
    source_gguf: Path | None = None,
) -> Path:
    """Write the transformers model in `model_dir` (safetensors + tokenizer.json) as a GGUF file.

    `dtype` is f32 or f16 for the matrices (norms stay f32). `pre_tokenizer` is the
    llama.cpp name of the text split before BPE; by default it is derived from tokenizer.json
    (see `derive_pre_tokenizer`). `name` is general.name, the model name engines show
    (default: the config's). `source_gguf` is the GGUF the base was converted from (default:
    the one `model_dir`'s slmkit-model.json names): a Gemma 3 file takes its tokenizer from it.
    The file is written under a temporary name and renamed.
    """
    import gguf

    if dtype not in FLOAT_TYPES:
        raise ModelError(f"cannot write a GGUF in {dtype!r}", hint=f"choose one of {', '.join(FLOAT_TYPES)}")
    model_dir = Path(model_dir)
    hp = _hyperparameters(model_dir)
    file_type = {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16}[dtype]
    gemma = hp["arch"] == "gemma3"
    if gemma:
        vocab = gguf_gemma.vocabulary(model_dir, source_gguf or source_gguf_path(model_dir), hp["vocab_size"])
    else:
        vocab = _vocabulary(model_dir, hp["vocab_size"])
        pre = pre_tokenizer or derive_pre_tokenizer(vocab["pre_tokenizer"], model_dir / "tokenizer.json")

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{secrets.token_hex(4)}")
    writer = gguf.GGUFWriter(tmp, hp["arch"])
    try:
        _write_shape(writer, hp, file_type, name or hp["name"])
        if gemma:
            gguf_gemma.write_metadata(writer, hp, vocab)
        else:
            _write_metadata(writer, hp, vocab, pre)
        # Two passes over the weights: names, shapes and types first (the header), then the
        # data one tensor at a time, so a model larger than memory converts too.
        plan = _tensor_plan(model_dir, hp, dtype)
        for name, _, shape, np_dtype in plan:
            writer.add_tensor_info(name, shape, np_dtype, math.prod(shape) * np_dtype.itemsize)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for _, load, _, np_dtype in plan:
            writer.write_tensor_data(load().astype(np_dtype))
        writer.close()
        tmp.replace(out)
    finally:
        writer.close()
        tmp.unlink(missing_ok=True)
    return out


def quantize_gguf(src: Path, out: Path, quant: str, *, threads: int | None = None) -> Path:
    """Quantize a float GGUF with llama.cpp's quantizer (llama-cpp-python); `quant` in QUANT_TYPES.

    llama.cpp keeps some tensors at higher precision on its own (e.g. where a row length does
    not fit the 256-value K-quant blocks, as SmolLM2's 576 does not).
    """
    import ctypes
    import logging

    llama_cpp = require_llama_cpp()
    if quant not in QUANT_TYPES:
        raise ModelError(f"unknown GGUF quantization {quant!r}", hint=f"choose from {', '.join(QUANT_TYPES)}")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANT_TYPES[quant])
    params.nthread = threads or 0  # 0: llama.cpp uses every core
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp-{secrets.token_hex(4)}")
    # llama.cpp logs a line per tensor through llama-cpp-python's logger; keep its errors only.
    logger = logging.getLogger("llama-cpp-python")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        status = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
        if status != 0 or not tmp.exists():
            raise ModelError(f"llama.cpp could not quantize {src} to {quant} (status {status})")
        tmp.replace(out)
    finally:
        logger.setLevel(level)
        tmp.unlink(missing_ok=True)
    return out


def require_llama_cpp() -> Any:
    """The llama_cpp module, or a ModelError saying how to install it."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise ModelError(f"GGUF quantization and checks need llama-cpp-python ({exc})", hint=LLAMA_CPP_HINT) from None
    return llama_cpp


def open_gguf(path: Path, *, n_ctx: int, threads: int | None = None, logits_all: bool = False) -> Any:
    """A llama_cpp.Llama for the file, quiet, on the CPU, with `threads` (default: half the logical
    cores, for prompts too: llama.cpp's threads spin while they wait, so more threads than free
    cores makes it many times slower, not faster).

    On CPUs with AMX, llama.cpp's AMX weight buffers crash quantized matmuls (llama.cpp issue
    #20824; seen here on a Xeon with amx_int8): there the model loads without llama.cpp's extra
    buffer types, i.e. with its plain CPU kernels.
    """
    llama_cpp = require_llama_cpp()
    threads = threads or max((os.cpu_count() or 2) // 2, 1)
    default_params = llama_cpp.llama_cpp.llama_model_default_params
    if _cpu_has_amx():
        # Llama() takes no option for it: hand it default parameters with the flag off.
        def without_extra_buffers() -> Any:
            params = default_params()
            params.use_extra_bufts = False
            return params

        llama_cpp.llama_cpp.llama_model_default_params = without_extra_buffers
    try:
        return llama_cpp.Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_batch=min(n_ctx, 512),
            n_threads=threads,
            n_threads_batch=threads,
            logits_all=logits_all,
            verbose=False,
        )
    except Exception as exc:  # llama-cpp-python raises ValueError / RuntimeError for a file it refuses
        raise ModelError(f"llama.cpp cannot load {path}: {exc}") from exc
    finally:
        llama_cpp.llama_cpp.llama_model_default_params = default_params


def _cpu_has_amx() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_int8" in flags or " amx_tile" in flags


def gguf_answers(
    path: Path, prompts: list[str], *, max_new_tokens: int, threads: int | None = None
) -> list[GgufAnswer]:
    """Greedy answers from llama.cpp to fully rendered prompts, decoded as a llama.cpp user gets them.

    Each prompt is tokenized by llama.cpp from the text (special tokens parsed, no BOS added:
    the chat template already wrote what the model expects). Decoding stops at an
    end-of-generation token or after `max_new_tokens`, as `slmkit eval` does.
    """
    llama_cpp = require_llama_cpp()
    if not prompts:
        return []
    probe = open_gguf(path, n_ctx=64, threads=threads)
    try:
        encoded = [probe.tokenize(p.encode("utf-8"), add_bos=False, special=True) for p in prompts]
        trained = llama_cpp.llama_model_n_ctx_train(probe.model)
    finally:
        probe.close()
    need = max(len(ids) for ids in encoded) + max_new_tokens + 1
    if need > trained:
        raise ModelError(f"a gold prompt needs {need} tokens of context; {path.name} was trained for {trained}")
    llm = open_gguf(path, n_ctx=need, threads=threads)
    try:
        return [_greedy(llm, ids, max_new_tokens) for ids in encoded]
    finally:
        llm.close()


def _greedy(llm: Any, ids: list[int], max_new_tokens: int) -> GgufAnswer:
    """One prompt's greedy answer: the argmax of llama.cpp's logits at every step."""
    import numpy as np

    llama_cpp = require_llama_cpp()
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_vocab = llm.n_vocab()
    # Keep the keys/values of the tokens this prompt shares with the previous one (the system
    # message, mostly): eval() drops the cache past n_tokens and prefills only the rest.
    llm.n_tokens = _shared_length(llm.input_ids[: llm.n_tokens].tolist(), ids)
    llm.eval(ids[llm.n_tokens :])
    new: list[int] = []
    finished = False
    while len(new) < max_new_tokens:
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(n_vocab,))
        token = int(np.argmax(logits))
        if llama_cpp.llama_vocab_is_eog(vocab, token):
            finished = True
            break
        new.append(token)
        llm.eval([token])
    text = llm.detokenize(new).decode("utf-8", errors="replace")
    return GgufAnswer(text, list(ids), new, finished)


def _shared_length(cached: list[int], ids: list[int]) -> int:
    """How many leading tokens `ids` shares with `cached`, leaving at least one of its own to eval."""
    n = 0
    for a, b in zip(cached, ids[:-1], strict=False):
        if a != b:
            break
        n += 1
    return n


# --- reading the transformers model ------------------------------------------------------


def _hyperparameters(model_dir: Path) -> dict[str, Any]:
    path = model_dir / "config.json"
    try:
        config = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}", hint="point at a transformers model directory") from exc
    archs = config.get("architectures") or [config.get("model_type", "?")]
    if archs[0] not in SUPPORTED_ARCHITECTURES:
        raise ModelError(
            f"{path}: architectures is {archs}; the GGUF export supports {', '.join(SUPPORTED_ARCHITECTURES)}",
            hint="export --format merged (safetensors, loadable by transformers and vLLM) for this model",
        )
    if archs[0] == gguf_gemma.ARCHITECTURE:
        return gguf_gemma.hyperparameters(config, path) | {"name": _display_name(config, model_dir)}
    problems = []
    if config.get("hidden_act", "silu") != "silu":
        problems.append(f"hidden_act is {config['hidden_act']!r} (llama.cpp's Llama uses silu)")
    if config.get("attention_bias") or config.get("mlp_bias"):
        problems.append("attention_bias / mlp_bias are set (biases are not written)")
    if problems:
        raise ModelError(f"{path}: cannot export to GGUF: {'; '.join(problems)}", hint="export --format merged")
    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    rope = dict(config.get("rope_parameters") or config.get("rope_scaling") or {})
    rope.setdefault("rope_theta", config.get("rope_theta", 10000.0))
    return {
        "arch": "llama",
        "vocab_size": int(config["vocab_size"]),
        "context_length": int(config.get("max_position_embeddings", 2048)),
        "hidden": hidden,
        "layers": int(config["num_hidden_layers"]),
        "ffn": int(config["intermediate_size"]),
        "heads": heads,
        "kv_heads": int(config.get("num_key_value_heads") or heads),
        "head_dim": int(config.get("head_dim") or hidden // heads),
        "rms_eps": float(config.get("rms_norm_eps", 1e-6)),
        "rope": rope,
        "name": _display_name(config, model_dir),
        "path": path,
    }


def _display_name(config: dict[str, Any], model_dir: Path) -> str:
    name = str(config.get("_name_or_path") or config.get("_model_name_or_path") or "")
    return name if name and not name.startswith("/") else model_dir.name


def _vocabulary(model_dir: Path, vocab_size: int) -> dict[str, Any]:
    """Tokens, types and merges of a byte-level BPE tokenizer.json; special ids from the tokenizer."""
    import gguf
    from transformers import AutoTokenizer

    path = model_dir / "tokenizer.json"
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read {path}: {exc}", hint="the GGUF export needs the model's tokenizer.json") from exc
    model = spec.get("model") or {}
    byte_level = (spec.get("decoder") or {}).get("type") == "ByteLevel"
    if model.get("type") != "BPE" or not byte_level:
        raise ModelError(
            f"{path}: the tokenizer is {model.get('type')} with a {(spec.get('decoder') or {}).get('type')} decoder; "
            "the GGUF export writes byte-level BPE tokenizers (GPT-2 style) only",
            hint="export --format merged for this model",
        )
    ids: dict[int, str] = {int(i): tok for tok, i in model["vocab"].items()}
    types = {i: gguf.TokenType.NORMAL for i in ids}
    for added in spec.get("added_tokens", []):
        ids[int(added["id"])] = added["content"]
        types[int(added["id"])] = gguf.TokenType.CONTROL if added.get("special") else gguf.TokenType.USER_DEFINED
    if max(ids) >= vocab_size:
        raise ModelError(
            f"{path}: token id {max(ids)} is outside the model's vocab_size {vocab_size} (config.json)",
            hint="the tokenizer does not belong to these weights",
        )
    # Embedding rows without a token (vocab padded to a round size) get a placeholder.
    tokens = [ids.get(i, f"[PAD{i}]") for i in range(vocab_size)]
    token_types = [types.get(i, gguf.TokenType.UNUSED) for i in range(vocab_size)]
    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    probe = "Hello"
    with_special = tokenizer(probe)["input_ids"]
    without = tokenizer(probe, add_special_tokens=False)["input_ids"]
    template = tokenizer.chat_template
    if isinstance(template, dict):
        template = template.get("default")
    return {
        "tokens": tokens,
        "types": token_types,
        "merges": merges,
        "pre_tokenizer": spec.get("pre_tokenizer"),
        "bos": tokenizer.bos_token_id,
        "eos": tokenizer.eos_token_id,
        "eot": _extra_stop_id(model_dir, tokenizer.eos_token_id),
        "unk": tokenizer.unk_token_id,
        "pad": tokenizer.pad_token_id,
        "add_bos": len(with_special) > len(without) and with_special[0] == tokenizer.bos_token_id,
        "add_eos": len(with_special) > len(without) and with_special[-1] == tokenizer.eos_token_id,
        "chat_template": template,
    }


def _extra_stop_id(model_dir: Path, eos: int | None) -> int | None:
    """The end-of-turn id generation stops at besides the tokenizer's eos (generation_config.json)."""
    path = model_dir / "generation_config.json"
    if not path.exists():
        return None
    value = json.loads(path.read_text()).get("eos_token_id")
    others = [int(v) for v in (value if isinstance(value, list) else [value]) if v is not None and v != eos]
    return others[0] if others else None


def derive_pre_tokenizer(pre: Any, where: Path) -> str:
    """llama.cpp's name for the pre-tokenizer tokenizer.json describes, when it is one we recognize."""
    steps = pre.get("pretokenizers", []) if isinstance(pre, dict) and pre.get("type") == "Sequence" else [pre]
    shapes = [_step_shape(s) for s in steps]
    if shapes == ["gpt2"]:
        return "gpt-2"
    if shapes == ["digits", "gpt2"]:
        return "smollm"
    if shapes in (["llama3", "bytelevel"], ["llama3", "gpt2"]):
        return "llama-bpe"
    raise ModelError(
        f"{where}: cannot tell which llama.cpp pre-tokenizer matches this tokenizer's pre_tokenizer ({shapes})",
        hint="name it in slmkit.yaml: export.gguf_pre_tokenizer (e.g. llama-bpe, gpt-2, smollm), as llama.cpp "
        "lists it for this model",
    )


def _step_shape(step: Any) -> str:
    if not isinstance(step, dict):
        return "none"
    kind = step.get("type")
    if kind == "ByteLevel":
        return "gpt2" if step.get("use_regex", True) else "bytelevel"
    if kind == "Digits" and step.get("individual_digits"):
        return "digits"
    if kind == "Split" and (step.get("pattern") or {}).get("Regex") == _LLAMA3_REGEX:
        return "llama3"
    return str(kind)


def source_gguf_path(model_dir: Path) -> Path | None:
    """The GGUF a base model was converted from (see models.resolve), when it is still there."""
    marker = Path(model_dir) / "slmkit-model.json"
    if not marker.exists():
        return None
    source = json.loads(marker.read_text()).get("source_gguf")
    return Path(source) if source and Path(source).exists() else None


def source_gguf_pre_tokenizer(model_dir: Path) -> str | None:
    """tokenizer.ggml.pre of the GGUF a base model was converted from, if any."""
    import gguf

    source = source_gguf_path(model_dir)
    if source is None:
        return None
    field = gguf.GGUFReader(source).get_field(gguf.Keys.Tokenizer.PRE)
    return str(field.contents()) if field is not None else None


# --- writing ---------------------------------------------------------------------------


def _write_shape(writer: Any, hp: dict[str, Any], file_type: Any, name: str) -> None:
    """The header keys every architecture writes the same way."""
    writer.add_name(name)
    writer.add_file_type(file_type)
    writer.add_context_length(hp["context_length"])
    writer.add_embedding_length(hp["hidden"])
    writer.add_block_count(hp["layers"])
    writer.add_feed_forward_length(hp["ffn"])
    writer.add_head_count(hp["heads"])
    writer.add_head_count_kv(hp["kv_heads"])
    writer.add_layer_norm_rms_eps(hp["rms_eps"])


def _write_metadata(writer: Any, hp: dict[str, Any], vocab: dict[str, Any], pre: str) -> None:
    import gguf

    writer.add_vocab_size(hp["vocab_size"])
    writer.add_rope_dimension_count(hp["head_dim"])
    writer.add_rope_freq_base(float(hp["rope"]["rope_theta"]))
    if hp["head_dim"] != hp["hidden"] // hp["heads"]:
        writer.add_key_length(hp["head_dim"])
        writer.add_value_length(hp["head_dim"])
    rope_type = hp["rope"].get("rope_type") or hp["rope"].get("type") or "default"
    if rope_type == "linear":
        writer.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
        writer.add_rope_scaling_factor(float(hp["rope"]["factor"]))
    elif rope_type not in ("default", "llama3"):  # llama3 scaling is a tensor: see _rope_freqs
        raise ModelError(
            f"{hp['path']}: rope type {rope_type!r} is not supported by the GGUF export (default, linear, llama3 are)",
            hint="export --format merged for this model",
        )

    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(vocab["tokens"])
    writer.add_token_types(vocab["types"])
    writer.add_token_merges(vocab["merges"])
    for key, add in (
        ("bos", writer.add_bos_token_id),
        ("eos", writer.add_eos_token_id),
        ("eot", writer.add_eot_token_id),
        ("unk", writer.add_unk_token_id),
        ("pad", writer.add_pad_token_id),
    ):
        if vocab[key] is not None:
            add(int(vocab[key]))
    writer.add_add_bos_token(bool(vocab["add_bos"]))
    writer.add_add_eos_token(bool(vocab["add_eos"]))
    if vocab["chat_template"]:
        writer.add_chat_template(vocab["chat_template"])


def _tensor_plan(model_dir: Path, hp: dict[str, Any], dtype: str) -> list[tuple[str, Any, tuple[int, ...], Any]]:
    """(GGUF name, loader of the array in the file's layout, shape, numpy dtype) for every weight.

    The loaders reorder the q/k rows for RoPE; vectors (norms) stay float32.
    """
    import gguf
    import numpy as np
    from safetensors import safe_open

    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise ModelError(f"no *.safetensors in {model_dir}", hint="save the model with save_pretrained first")
    arch = gguf.MODEL_ARCH.GEMMA3 if hp["arch"] == "gemma3" else gguf.MODEL_ARCH.LLAMA
    names = gguf.get_tensor_name_map(arch, hp["layers"])
    matrix = np.dtype(np.float16 if dtype == "f16" else np.float32)
    plan: list[tuple[str, Any, tuple[int, ...], Any]] = []
    freqs = _rope_freqs(hp)
    if freqs is not None:
        freqs_name = gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight"
        plan.append((freqs_name, lambda: freqs, freqs.shape, freqs.dtype))
    for file in files:
        with safe_open(str(file), framework="pt") as weights:
            for key in weights.keys():  # noqa: SIM118 - safe_open is not a mapping
                if key.endswith("rotary_emb.inv_freq"):
                    continue  # recomputed by llama.cpp from the rope settings
                if hp["arch"] == "gemma3" and gguf_gemma.skipped(key, hp):
                    continue
                name = names.get_name(key, try_suffixes=(".weight", ".bias"))
                if name is None:
                    raise ModelError(f"{file.name}: tensor {key} has no place in a llama.cpp {hp['arch']} model")
                shape = tuple(weights.get_slice(key).get_shape())
                plan.append((name, _loader(file, key, hp), shape, matrix if len(shape) > 1 else np.dtype(np.float32)))
    return plan


def _loader(file: Path, key: str, hp: dict[str, Any]) -> Any:
    def load() -> Any:
        from safetensors import safe_open

        with safe_open(str(file), framework="pt") as weights:
            array = weights.get_tensor(key).float().numpy()
        if hp["arch"] == "gemma3":
            return gguf_gemma.transform(key, array)
        if key.endswith("self_attn.q_proj.weight"):
            return _rope_rows(array, hp["heads"])
        if key.endswith("self_attn.k_proj.weight"):
            return _rope_rows(array, hp["kv_heads"])
        return array

    return load


def _rope_rows(weight: Any, heads: int) -> Any:
    """Reorder each head's rows from transformers' half-split RoPE pairs to llama.cpp's adjacent pairs.

    Within a head of size d, row i and row i + d/2 are rotated together in transformers; in
    llama.cpp rows 2i and 2i+1 are. So the new row 2i is old row i, and 2i+1 is old i + d/2.
    """
    rows, cols = weight.shape
    d = rows // heads
    return weight.reshape(heads, 2, d // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def _rope_freqs(hp: dict[str, Any]) -> Any:
    """Llama 3 style RoPE scaling as llama.cpp takes it: one divisor per rotated frequency."""
    import numpy as np

    rope = hp.get("rope") or {}
    if (rope.get("rope_type") or rope.get("type")) != "llama3":
        return None
    factor = float(rope["factor"])
    low, high = float(rope.get("low_freq_factor", 1.0)), float(rope.get("high_freq_factor", 4.0))
    original = float(rope["original_max_position_embeddings"])
    dim = hp["head_dim"]
    divisors = []
    for i in range(0, dim, 2):
        wavelength = 2 * math.pi * float(rope["rope_theta"]) ** (i / dim)
        if wavelength < original / high:  # high frequencies: unchanged
            divisors.append(1.0)
        elif wavelength > original / low:  # low frequencies: stretched by the full factor
            divisors.append(factor)
        else:  # in between: blend the two
            smooth = (original / wavelength - low) / (high - low)
            divisors.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(divisors, dtype=np.float32)
