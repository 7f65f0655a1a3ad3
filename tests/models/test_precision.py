"""`train.precision: auto` picks bf16 only where the CPU computes it natively."""

from __future__ import annotations

from slmkit.models.precision import autocast, cpu_has_native_bf16, resolve_precision


def _cpuinfo(tmp_path, flags: str):
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: Some CPU\nflags\t\t: fpu sse2 {flags}\n\n")
    return path


def test_bf16_flags_are_recognised(tmp_path):
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, "avx512f amx_bf16 amx_tile"))
    assert cpu_has_native_bf16(_cpuinfo(tmp_path, "avx512f avx512_bf16"))
    assert not cpu_has_native_bf16(_cpuinfo(tmp_path, "avx2 avx512f"))
    assert not cpu_has_native_bf16(tmp_path / "missing")


def test_explicit_precision_is_kept_and_auto_follows_the_cpu(tmp_path, monkeypatch):
    assert resolve_precision("fp32") == "fp32"
    assert resolve_precision("bf16") == "bf16"
    # `auto` is bf16 exactly when the CPU computes it natively: checked against both kinds of CPU.
    from slmkit.models import precision

    for flags, expected in (("avx512f avx512_bf16", "bf16"), ("avx2 avx512f", "fp32")):
        cpuinfo = _cpuinfo(tmp_path, flags)
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda path=cpuinfo: cpu_has_native_bf16(path))
        assert resolve_precision("auto") == expected
    monkeypatch.undo()
    assert resolve_precision("auto") == ("bf16" if cpu_has_native_bf16() else "fp32")  # this machine's CPU


def test_autocast_runs_matmuls_in_the_chosen_format():
    import torch

    a, b = torch.randn(4, 8), torch.randn(8, 4)
    with autocast("bf16"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast("fp32"):
        assert (a @ b).dtype == torch.float32


def test_adapter_merged_in_float32_then_cast_gives_the_adapter_s_answers(tmp_path, tiny_model_dir):
    import torch
    from peft import LoraConfig, get_peft_model

    from slmkit.models import load_model, resolve_base_model

    ref = resolve_base_model(str(tiny_model_dir))
    trained = get_peft_model(load_model(ref), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in trained.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # a real update, so merged weights differ from the base
    trained.save_pretrained(tmp_path / "adapter")

    ids = torch.tensor([[1, 42, 7, 99, 5, 13]])
    with torch.no_grad():
        base_logits = load_model(ref)(input_ids=ids).logits
        full = load_model(ref, adapter=tmp_path / "adapter")(input_ids=ids).logits
        half_model = load_model(ref, adapter=tmp_path / "adapter", dtype="bfloat16")
        half = half_model(input_ids=ids).logits.float()
    assert all(p.dtype == torch.bfloat16 for p in half_model.parameters())
    assert not torch.allclose(full, base_logits, atol=1e-3)  # the adapter changes the answers
    # bf16 keeps ~3 significant digits: close to the float32 merge, far closer than to the base.
    assert (half - full).abs().max() < 0.1 * (full - base_logits).abs().max()
