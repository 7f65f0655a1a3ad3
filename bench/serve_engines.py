"""Serving engines on the real SmolLM2 + a trained adapter: tokens/s for 16 concurrent requests.

Baseline: the transformers engine (in-process, adapter merged, one batch of 16). Then vLLM-CPU
with the adapter as a LoRA module (unmerged) and with the merged model, and llama.cpp on the
f16 and q8_0 GGUF of the merged model. Each answers the same 16 rendered tickets greedily,
through the gateway's own Generator, without and with decoding constrained to the task's JSON
schema; reports completion tokens/s, the ratio to the baseline, and the share of schema-valid
answers (before the guard).

    .venv/bin/python bench/serve_engines.py [--project .demo/support-tickets] [--vllm-python .venv-vllm/bin/python]

The project must hold a release of a LoRA adapter on smollm2-135m-instruct (`make demo` makes one).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import REPO, example_rows


def measure(name: str, generator: Any, task: Any, prompts: list[str], max_new_tokens: int) -> list[dict[str, Any]]:
    """One warm-up request, then all prompts at once, unconstrained and constrained."""
    generator.generate(prompts[:1], max_new_tokens=8, temperature=0.0, seed=0, schema=None)
    rows = []
    for schema in (None, task.schema):
        began = time.perf_counter()
        out = generator.generate(prompts, max_new_tokens=max_new_tokens, temperature=0.0, seed=0, schema=schema)
        seconds = time.perf_counter() - began
        tokens = sum(g.completion_tokens for g in out)
        valid = sum(task.parse(g.text).valid for g in out)
        rows.append(
            {
                "engine": name,
                "constrained": schema is not None,
                "tokens": tokens,
                "seconds": seconds,
                "tok_s": tokens / seconds,
                "valid": f"{valid}/{len(out)}",
            }
        )
        constrained = schema is not None
        print(f"  {name:<28} constrained={constrained!s:<5} {tokens / seconds:7.1f} tok/s  valid {valid}/{len(out)}")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=REPO / ".demo" / "support-tickets")
    parser.add_argument(
        "--vllm-python", default=os.environ.get("SLMKIT_VLLM_PYTHON") or str(REPO / ".venv-vllm/bin/python")
    )
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--skip", default="", help="comma-separated: vllm, llamacpp")
    args = parser.parse_args()

    import torch

    from slmkit.config import load_config
    from slmkit.models import load_model
    from slmkit.models.gguf_export import quantize_gguf, source_gguf_pre_tokenizer, write_gguf
    from slmkit.registry import Registry
    from slmkit.serve.generator import CompletionsGenerator, TransformersGenerator
    from slmkit.serve.llamacpp_engine import response_format
    from slmkit.serve.processes import EngineProcess
    from slmkit.serve.releases import _system_prefix, check_release
    from slmkit.serve.vllm_engine import VllmBackend, structured_outputs
    from slmkit.train.merge import merge_adapter

    config = load_config(args.project)
    registry = Registry(config.state_dir)
    release = registry.resolve(config.task.name, default_alias=config.serve.release)
    registry.close()
    checked = check_release(release, state_dir=config.state_dir, root=config.root)
    task, tokenizer = checked.spec.task, checked.tokenizer
    _, rows = example_rows(args.requests)
    prompts = [task.prompt_text(tokenizer, text) for text, _ in rows]
    skip = set(args.skip.split(","))
    threads = max((os.cpu_count() or 2) // 2, 1)
    torch.set_num_threads(threads)
    print(
        f"{release.ref} on {checked.base.model_id}: {len(prompts)} concurrent requests, {threads} thread(s) each engine"
    )

    results: list[dict[str, Any]] = []
    model = load_model(checked.base, adapter=checked.adapter_dir, merge=True, dtype="float32")
    baseline = TransformersGenerator(model, tokenizer, _system_prefix(task, tokenizer, model))
    results += measure("transformers (merged, fp32)", baseline, task, prompts, args.max_new_tokens)
    del model, baseline

    scratch = Path(tempfile.mkdtemp(prefix="slmkit-bench-engines-"))
    logs = scratch / "logs"
    merged = merge_adapter(checked.base, checked.adapter_dir, scratch / "merged", "float32")
    serve = config.serve.model_copy(update={"vllm_python": args.vllm_python, "context_tokens": 1024})
    if "vllm" not in skip:
        backend = VllmBackend(serve, logs)
        try:
            generator = backend.open(checked)
            results += measure("vLLM LoRA module (fp32)", generator, task, prompts, args.max_new_tokens)
        finally:
            backend.close()
        argv = [args.vllm_python, "-m", "vllm.entrypoints.openai.api_server", "--model", str(merged)]
        argv += ["--served-model-name", "merged", "--dtype", "float32", "--max-model-len", "1024"]
        argv += ["--generation-config", "vllm", "--structured-outputs-config", '{"backend": "guidance"}']
        process = EngineProcess(
            "vLLM merged", argv, env={"VLLM_CPU_KVCACHE_SPACE": "1"}, log_path=logs / "vllm-merged.log"
        )
        try:
            process.start()
            generator = CompletionsGenerator(process, "merged", tokenizer, structured=structured_outputs)
            results += measure("vLLM merged (fp32)", generator, task, prompts, args.max_new_tokens)
        finally:
            process.stop()
    if "llamacpp" not in skip:
        pre = config.export.gguf_pre_tokenizer or source_gguf_pre_tokenizer(checked.base.path)
        f16 = write_gguf(merged, scratch / "model-f16.gguf", dtype="f16", pre_tokenizer=pre)
        q8 = quantize_gguf(f16, scratch / "model-q8_0.gguf", "q8_0")
        for quant, path in (("f16", f16), ("q8_0", q8)):
            argv = [sys.executable, "-m", "slmkit.serve.llamacpp_worker", "--model", str(path), "--n-ctx", "1024"]
            process = EngineProcess(f"llama.cpp {quant}", argv, log_path=logs / f"llamacpp-{quant}.log")
            try:
                process.start()
                generator = CompletionsGenerator(process, quant, tokenizer, structured=response_format)
                results += measure(f"llama.cpp GGUF {quant}", generator, task, prompts, args.max_new_tokens)
            finally:
                process.stop()

    base = results[0]["tok_s"]
    print(f"\n{'engine':<30}{'constrained':>12}{'tokens':>8}{'seconds':>9}{'tok/s':>8}{'x base':>8}{'valid':>7}")
    for r in results:
        print(
            f"{r['engine']:<30}{r['constrained']!s:>12}{r['tokens']:>8}{r['seconds']:>9.1f}{r['tok_s']:>8.1f}"
            f"{r['tok_s'] / base:>8.2f}{r['valid']:>7}"
        )
    print(f"baseline: {results[0]['engine']}, unconstrained; engine logs in {logs}")


if __name__ == "__main__":
    main()
