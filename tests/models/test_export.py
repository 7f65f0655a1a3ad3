"""`slmkit export`: each format loads in its engine and answers like the release; every export is recorded."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slmkit.config import load_config
from slmkit.data import run_data_build
from slmkit.errors import ModelError
from slmkit.eval.run import run_eval
from slmkit.models import gguf_export, load_model, load_tokenizer, resolve_base_model
from slmkit.models.gguf_export import derive_pre_tokenizer, gguf_answers, open_gguf, write_gguf
from slmkit.models.tiny import build_tiny_model
from slmkit.pipeline import run_release
from slmkit.registry import Registry
from slmkit.train import run_train
from slmkit.train.export import MANIFEST, run_export
from tests.conftest import write_project
from tests.greedy import greedy_ids
from tests.test_cli import run_cli
from tests.train.test_merge import _PLAIN_LOAD, PROMPTS, REPO

FAST_TRAINING = {
    "train.max_steps": 6,
    "train.batch_size": 4,
    "train.eval_every": 6,
    "train.learning_rate": 0.05,  # far enough for the adapter to change greedy answers
    "eval.max_items": 8,
    "eval.max_new_tokens": 16,
    "eval.batch_size": 4,
    "eval.gates": ["schema_validity >= 0.0"],
}


def release_project(project: Path) -> tuple:
    """Build, train, evaluate and release the project; (config, release)."""
    config = load_config(project)
    run_data_build(config)
    run_train(config, progress=False)
    run_eval(config, progress=False, log=lambda _: None)
    return config, run_release(config)


@pytest.fixture(scope="module")
def released(tmp_path_factory, tiny_model_dir):
    """A tiny project with one release (tiny Llama + a LoRA adapter that changes its answers)."""
    return release_project(
        write_project(tmp_path_factory.mktemp("export") / "project", tiny_model_dir, overrides=FAST_TRAINING)
    )


def quiet(_: str) -> None:
    pass


# --- peft and merged ---------------------------------------------------------------------


def test_peft_export_reloads_with_peft_and_answers_like_the_release(released, tmp_path):
    from peft import PeftModel

    config, rel = released
    result = run_export(config, fmt="peft", out_dir=tmp_path / "out", limit=6, log=quiet)
    (exported,) = result.exports
    assert exported.path == tmp_path / "out" / "support-tickets-v1-peft"
    names = {p.name for p in exported.path.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", MANIFEST} <= names
    stored_adapter = Registry(config.state_dir).store.path(rel.adapter_digest)
    same = (exported.path / "adapter_model.safetensors").read_bytes()
    assert same == (stored_adapter / "adapter_model.safetensors").read_bytes()

    check = exported.check
    assert check["items"] == 6 and check["agreement"] == 1.0 and check["identical_text"] == 6
    assert not check["disagreements"] and result.inconsistent == []

    # Exactly the call a user makes: PEFT on the base model, pointed at the exported directory.
    base = resolve_base_model(str(config.base_model), config.root)
    tokenizer = load_tokenizer(base)
    reloaded = PeftModel.from_pretrained(load_model(base), exported.path)
    expected = greedy_ids(load_model(base, adapter=stored_adapter, merge=False), tokenizer, PROMPTS, 8)
    assert greedy_ids(reloaded, tokenizer, PROMPTS, 8) == expected
    assert greedy_ids(load_model(base), tokenizer, PROMPTS, 8) != expected, "the adapter must matter"


def test_merged_export_loads_in_transformers_without_peft_and_agrees(released, tmp_path):
    config, rel = released
    result = run_export(config, "support-tickets@1", fmt="merged", out_dir=tmp_path, limit=6, log=quiet)
    (exported,) = result.exports
    assert exported.quantization == "f32" and exported.check["agreement"] == 1.0
    assert exported.check["prompts_identical"] and exported.check["valid"] == exported.check["reference_valid"]
    assert not any(p.name.startswith("adapter") for p in exported.path.iterdir())

    report = tmp_path / "plain.json"
    subprocess.run(
        [sys.executable, "-c", _PLAIN_LOAD, str(exported.path), str(report), json.dumps(PROMPTS), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
    )
    base = resolve_base_model(str(config.base_model), config.root)
    adapter = Registry(config.state_dir).store.path(rel.adapter_digest)
    expected = greedy_ids(load_model(base, adapter=adapter, merge=False), load_tokenizer(base), PROMPTS, 12)
    assert json.loads(report.read_text())["ids"] == expected


def test_every_export_is_recorded_and_an_altered_one_is_caught(released, tmp_path):
    config, rel = released
    result = run_export(config, fmt="peft", out_dir=tmp_path, limit=3, log=quiet)
    (exported,) = result.exports
    registry = Registry(config.state_dir)
    record = next(r for r in registry.list_exports("support-tickets") if r.digest == exported.digest)
    meta = record.meta
    assert (meta["release"], meta["version"], meta["format"], meta["quantization"]) == (
        "support-tickets",
        1,
        "peft",
        "none",
    )
    assert meta["agreement"] == exported.check["agreement"] and meta["items"] == 3
    assert meta["valid"] == exported.check["valid"] and meta["adapter_digest"] == rel.adapter_digest
    assert meta["versions"]["peft"] and meta["seconds"]["check"] > 0
    assert record.size == exported.size > 0
    entry = registry.audit_log("support-tickets", limit=1)[0]
    assert entry.action == "export" and entry.detail["digest"] == exported.digest
    index = json.loads((tmp_path / "exports.json").read_text())
    assert index[exported.path.name]["sha256"] == exported.digest
    assert registry.verify() == []

    stored = registry.store.path(exported.digest) / "adapter_model.safetensors"
    original = stored.read_bytes()
    stored.write_bytes(original[:-1] + b"\x00")
    problems = registry.verify()
    assert len(problems) == 1 and "export artifact" in problems[0] and "was altered" in problems[0]
    stored.write_bytes(original)  # the other tests export the same bytes again


def test_an_unverified_export_is_recorded_as_unchecked(released, tmp_path, capsys):
    config, _ = released
    code, out, err = run_cli(capsys, "export", "-p", str(config.root), "-f", "peft", "-o", str(tmp_path), "--no-verify")
    assert code == 0, err
    row = next(line for line in out.splitlines() if line.startswith("peft"))
    assert row.split()[-3:-1] == ["-", "-"]  # agreement and valid: not measured
    digest = json.loads((tmp_path / "exports.json").read_text())["support-tickets-v1-peft"]["sha256"]
    record = next(r for r in Registry(config.state_dir).list_exports("support-tickets") if r.digest == digest)
    assert record.meta["verified"] is False and record.meta["agreement"] is None


def test_export_mistakes_get_a_message_not_a_traceback(released, capsys):
    config, _ = released
    p = str(config.root)
    code, _, err = run_cli(capsys, "export", "-p", p, "--format", "gguf", "--quant", "q9_9")
    assert code == 5 and "--quant q9_9 is not offered for --format gguf" in err and "q4_k_m" in err
    code, _, err = run_cli(capsys, "export", "nope@1", "-p", p, "--format", "peft")
    assert code == 7 and "no release named 'nope'" in err
    code, _, err = run_cli(capsys, "export", "support-tickets@9", "-p", p, "--format", "merged")
    assert code == 7 and "has no version 9" in err
    assert "Traceback" not in err


def test_slmkit_export_prints_the_table(released, tmp_path, capsys):
    config, _ = released
    code, out, err = run_cli(
        capsys, "export", "-p", str(config.root), "--format", "peft", "--out", str(tmp_path), "--limit", "3"
    )
    assert code == 0, err
    assert "exported support-tickets@1" in out and "reference: base + adapter (unexported), 3 gold items" in out
    row = next(line for line in out.splitlines() if line.startswith("peft"))
    assert "support-tickets-v1-peft" in row and "100.0%" in row


# --- the GGUF converter ------------------------------------------------------------------


def test_a_non_llama_model_is_refused_with_the_supported_architectures(tiny_model_dir, tmp_path):
    model = tmp_path / "qwen"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    (model / "config.json").write_text(json.dumps({**config, "architectures": ["Qwen2ForCausalLM"]}))
    with pytest.raises(ModelError) as err:
        write_gguf(model, tmp_path / "out.gguf")
    assert "Qwen2ForCausalLM" in str(err.value) and "supports LlamaForCausalLM" in str(err.value)
    assert "--format merged" in str(err.value)
    assert not (tmp_path / "out.gguf").exists()


def test_the_pre_tokenizer_is_named_or_the_config_field_to_set_is(tmp_path):
    gpt2 = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    assert derive_pre_tokenizer(gpt2, tmp_path) == "gpt-2"
    digits = {"type": "Sequence", "pretokenizers": [{"type": "Digits", "individual_digits": True}, gpt2]}
    assert derive_pre_tokenizer(digits, tmp_path) == "smollm"
    with pytest.raises(ModelError) as err:
        derive_pre_tokenizer({"type": "Metaspace", "replacement": "▁"}, tmp_path / "tokenizer.json")
    assert "tokenizer.json" in str(err.value) and "export.gguf_pre_tokenizer" in str(err.value)


ROPES = {
    "default": {},
    "linear": {"rope_parameters": {"rope_type": "linear", "rope_theta": 10000.0, "factor": 4.0}},
    "llama3": {
        "rope_parameters": {
            "rope_type": "llama3",
            "rope_theta": 10000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        }
    },
}


@pytest.fixture(scope="module")
def sharp_models(tmp_path_factory, smollm2_ref):
    """Tiny Llamas with large weights: attention depends on position, so RoPE mistakes show."""
    pytest.importorskip("llama_cpp")
    root = tmp_path_factory.mktemp("sharp")
    return {
        name: build_tiny_model(
            root / name, smollm2_ref.path, hidden=32, layers=2, overrides={"initializer_range": 0.4, **rope}
        )
        for name, rope in ROPES.items()
    }


def llama_cpp_logits(path: Path, ids: list[int]):
    import numpy as np

    llm = open_gguf(path, n_ctx=len(ids) + 8, logits_all=True)
    try:
        llm.eval(ids)
        return np.array(llm.scores[: len(ids)])
    finally:
        llm.close()


def transformers_logits(model_dir: Path, ids: list[int]):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.inference_mode():
        return model(input_ids=torch.tensor([ids])).logits[0].numpy()


def chat_ids(model_dir: Path, text: str) -> list[int]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True)
    return list(ids["input_ids"] if hasattr(ids, "keys") else ids)


@pytest.mark.parametrize("rope", list(ROPES))
def test_llama_cpp_computes_the_logits_transformers_does_on_our_gguf(sharp_models, tmp_path, monkeypatch, rope):
    import numpy as np

    model_dir = sharp_models[rope]
    ids = chat_ids(model_dir, PROMPTS[0])
    expected = transformers_logits(model_dir, ids)
    scale = float(abs(expected).max())
    got = llama_cpp_logits(write_gguf(model_dir, tmp_path / "f32.gguf", dtype="f32"), ids)
    assert got.shape == expected.shape == (len(ids), 49152) and scale > 5.0
    # llama.cpp keeps its key/value cache in f16 by default: close, not bit-equal, and the
    # same greedy token wherever transformers' top two logits are not a near tie.
    assert float(abs(got - expected).max()) < 1e-2 * scale
    top2 = np.sort(expected, axis=-1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 0.1
    assert clear.mean() > 0.5 and (got.argmax(-1) == expected.argmax(-1))[clear].all()

    # The check must see a RoPE mistake: without the q/k row reordering llama.cpp rotates the
    # wrong pairs of dimensions; without the Llama 3 frequency divisors it rotates too fast.
    with monkeypatch.context() as patch:
        patch.setattr(gguf_export, "_rope_rows", lambda weight, heads: weight)
        wrong = llama_cpp_logits(write_gguf(model_dir, tmp_path / "unpermuted.gguf", dtype="f32"), ids)
    assert float(abs(wrong - expected).max()) > 0.5 * scale
    if rope == "llama3":
        with monkeypatch.context() as patch:
            patch.setattr(gguf_export, "_rope_freqs", lambda hp: None)
            unscaled = llama_cpp_logits(write_gguf(model_dir, tmp_path / "unscaled.gguf", dtype="f32"), ids)
        assert float(abs(unscaled - expected).max()) > 0.5 * scale


def test_f16_gguf_answers_with_the_greedy_tokens_of_transformers(sharp_models, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = sharp_models["default"]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    path = write_gguf(model_dir, tmp_path / "f16.gguf", dtype="f16")
    prompts = [
        tokenizer.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True, tokenize=False)
        for t in PROMPTS
    ]
    answers = gguf_answers(path, prompts, max_new_tokens=10)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    expected = greedy_ids(model, tokenizer, PROMPTS, 10)
    for answer, prompt, want in zip(answers, prompts, expected, strict=True):
        assert answer.prompt_ids == tokenizer(prompt, add_special_tokens=False)["input_ids"]
        n = len(answer.completion_ids)
        assert answer.completion_ids == want[:n] and (n == 10 or answer.finished)
        assert answer.text == tokenizer.decode(want[:n])


# --- GGUF exports of a release -----------------------------------------------------------

SMOLLM2_GGUF_KEYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.token_type", "tokenizer.ggml.merges")


def field(reader, key):
    found = reader.get_field(key)
    return None if found is None else found.contents()


def test_gguf_export_of_a_release_is_checked_by_llama_cpp_and_recorded(released, tmp_path, smollm2_ref):
    pytest.importorskip("llama_cpp")
    import gguf

    config, _ = released
    result = run_export(config, fmt="gguf", quantizations=["f32"], out_dir=tmp_path, limit=6, log=quiet)
    (exported,) = result.exports
    assert exported.path == tmp_path / "support-tickets-v1-f32.gguf"
    check = exported.check
    # llama.cpp splits every rendered gold prompt into exactly the tokens transformers does.
    assert check["items"] == 6 and check["prompt_tokens_identical"] == 6
    assert check["agreement"] == check["identical_json"] / 6 >= 5 / 6

    # The vocabulary we write is the one llama.cpp's own SmolLM2 GGUF carries (the tiny model uses its tokenizer).
    written = gguf.GGUFReader(exported.path)
    source = gguf.GGUFReader(json.loads((smollm2_ref.path / "slmkit-model.json").read_text())["source_gguf"])
    for key in SMOLLM2_GGUF_KEYS:
        assert field(written, key) == field(source, key), key
    assert field(written, "tokenizer.chat_template") == load_tokenizer(smollm2_ref).chat_template

    record = next(r for r in Registry(config.state_dir).list_exports("support-tickets") if r.digest == exported.digest)
    assert record.meta["format"] == "gguf" and record.meta["quantization"] == "f32"
    assert record.meta["agreement"] == check["agreement"] and record.meta["versions"]["llama_cpp_python"]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # trains, releases and checks two GGUFs of the real SmolLM2
def test_smollm2_release_exports_to_q8_0_and_q4_k_m_with_the_agreement_measured(tmp_path):
    pytest.importorskip("llama_cpp")
    import gguf

    project = write_project(
        tmp_path / "p",
        "smollm2-135m-instruct",
        rows=80,
        overrides={
            "train.max_steps": 4,
            "train.batch_size": 4,
            "train.eval_every": 4,
            "train.max_validation_rows": 8,
            "train.learning_rate": 0.002,
            "train.replay.max_new_tokens": 16,
            "eval.max_items": 4,
            "eval.max_new_tokens": 48,  # an answer is about 40 tokens
            "eval.compare_base": False,
            "eval.gates": ["schema_validity >= 0.0"],
        },
    )
    config, _ = release_project(project)
    result = run_export(config, fmt="gguf", quantizations=["q8_0", "q4_k_m"], limit=6, out_dir=tmp_path / "out")
    q8, q4 = result.exports
    print("\n".join(result.summary_lines()))
    for exported, file_type in ((q8, gguf.LlamaFileType.MOSTLY_Q8_0), (q4, gguf.LlamaFileType.MOSTLY_Q4_K_M)):
        reader = gguf.GGUFReader(exported.path)
        assert field(reader, "general.file_type") == file_type
        assert field(reader, "tokenizer.ggml.pre") == "smollm"  # copied from the base model's GGUF
        assert exported.check["items"] == 6 and exported.check["prompt_tokens_identical"] == 6
    assert 40e6 < q4.size < q8.size < 200e6
    # Q8_0 rounds each weight to 1/127 of its block's largest: most answers stay the adapter's
    # (27/32 on the example's 30-step adapter); 6 items of a 4-step adapter allow a flip or two.
    assert q8.check["agreement"] >= 0.5
    records = {r.meta["quantization"]: r.meta for r in Registry(config.state_dir).list_exports("support-tickets")}
    assert records["q8_0"]["agreement"] == q8.check["agreement"]
    assert records["q4_k_m"]["agreement"] == q4.check["agreement"]
    assert records["q4_k_m"]["items"] == 6 and records["q4_k_m"]["valid"] == q4.check["valid"]
