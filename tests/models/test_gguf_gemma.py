"""GGUF export of a Gemma 3 model: llama.cpp computes on our file what transformers computes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from slmkit.errors import ModelError
from slmkit.models import gguf_gemma
from slmkit.models.gguf_export import write_gguf

GEMMA_CONFIG = {
    "num_hidden_layers": 6,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_attention_heads": 2,
    "vocab_size": 262144,
    "layer_types": ["sliding_attention"] * 5 + ["full_attention"],
    "rope_parameters": {
        "full_attention": {"rope_theta": 1000000.0, "rope_type": "default"},
        "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"},
    },
}


def test_gemma_settings_llama_cpp_would_compute_differently_are_refused(tmp_path):
    assert gguf_gemma.hyperparameters(GEMMA_CONFIG, tmp_path / "config.json")["rope_theta"] == 1000000.0
    other_theta = json.loads(json.dumps(GEMMA_CONFIG))
    other_theta["rope_parameters"]["sliding_attention"]["rope_theta"] = 20000.0
    every_third = {**GEMMA_CONFIG, "layer_types": ["sliding_attention", "sliding_attention", "full_attention"] * 2}
    for config, words in ((other_theta, "rope_theta is 20000.0"), (every_third, "layer_types")):
        with pytest.raises(ModelError) as err:
            gguf_gemma.hyperparameters(config, tmp_path / "config.json")
        assert words in str(err.value) and "config.json" in str(err.value) and "--format merged" in err.value.hint


def test_a_gemma_without_its_source_gguf_names_the_way_out(tmp_path):
    with pytest.raises(ModelError) as err:
        gguf_gemma.vocabulary(tmp_path, None, 262144)
    assert "copies the tokenizer from the GGUF" in str(err.value) and "gemma3-270m" in err.value.hint


@pytest.fixture(scope="module")
def tiny_gemma(tmp_path_factory) -> Path:
    """A random 6-layer Gemma 3 with the real tokenizer: five sliding-window layers (window 8,
    shorter than the prompt) and a global one, norms far from zero so a missed +1 shows."""
    pytest.importorskip("llama_cpp")
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    from slmkit.models import resolve_base_model

    ref = resolve_base_model("gemma3-270m")
    real = json.loads((ref.path / "config.json").read_text())
    out = tmp_path_factory.mktemp("gemma") / "tiny"
    config = Gemma3TextConfig(
        **{k: v for k, v in GEMMA_CONFIG.items() if k != "layer_types"},
        num_key_value_heads=1,
        head_dim=32,
        query_pre_attn_scalar=32,
        max_position_embeddings=2048,
        sliding_window=8,
        bos_token_id=2,
        eos_token_id=1,
        pad_token_id=0,
        tie_word_embeddings=True,
        initializer_range=0.2,
    )
    assert config.vocab_size == real["vocab_size"]
    torch.manual_seed(0)
    model = Gemma3ForCausalLM(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.normal_(0, 0.5)
    model.save_pretrained(out)
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json"):
        shutil.copy2(ref.path / name, out / name)
    shutil.copy2(ref.path / "slmkit-model.json", out / "slmkit-model.json")  # names the source GGUF
    return out


@pytest.mark.slow
def test_llama_cpp_computes_the_logits_transformers_does_on_our_gemma_gguf(tiny_gemma, tmp_path, monkeypatch):
    import numpy as np
    from transformers import AutoTokenizer

    from slmkit.models.gguf_export import open_gguf
    from tests.models.test_export import chat_ids, llama_cpp_logits, transformers_logits

    message = [{"role": "user", "content": "Route this: my VPN keeps dropping since Monday."}]
    text = AutoTokenizer.from_pretrained(tiny_gemma).apply_chat_template(
        message, add_generation_prompt=True, tokenize=False
    )
    ids = chat_ids(tiny_gemma, message[0]["content"])
    assert len(ids) > 8  # longer than the sliding window
    expected = transformers_logits(tiny_gemma, ids)
    scale = float(abs(expected).max())
    path = write_gguf(tiny_gemma, tmp_path / "f32.gguf", dtype="f32")
    llm = open_gguf(path, n_ctx=len(ids) + 8)
    try:  # the copied SentencePiece vocabulary splits the prompt as transformers' tokenizer does
        assert llm.tokenize(text.encode(), add_bos=False, special=True) == ids
    finally:
        llm.close()

    got = llama_cpp_logits(path, ids)
    assert got.shape == expected.shape == (len(ids), 262144) and scale > 5.0
    assert float(abs(got - expected).max()) < 1e-2 * scale  # llama.cpp's f16 key/value cache: close, not equal
    top2 = np.sort(expected, axis=-1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.1
    assert clear.mean() > 0.5 and (got.argmax(-1) == expected.argmax(-1))[clear].all()

    # The check sees a norm mistake: written as transformers stores them (without the +1),
    # llama.cpp's Gemma scales every hidden state wrongly.
    with monkeypatch.context() as patch:
        patch.setattr(gguf_gemma, "transform", lambda key, array: array)
        wrong = llama_cpp_logits(write_gguf(tiny_gemma, tmp_path / "plain-norms.gguf", dtype="f32"), ids)
    assert float(abs(wrong - expected).max()) > 0.2 * scale
