"""Generation speed on the real SmolLM2: slmkit's batched decoding against plain batched generate.

Baseline: left-padded batches through `model.generate` in float32, every row prefilling its
whole prompt. Then slmkit's generate: the system prompt's keys/values computed once and reused
by every row, then bf16 weights where the CPU computes bf16 natively. Reports items/s, the
ratio to the baseline, and how many answers are token-for-token the same as the baseline's.

    .venv/bin/python bench/generate.py [--items 32] [--max-new-tokens 40]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import example_rows, smollm2, threads, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    from slmkit.models import generate as gen
    from slmkit.models import load_model, load_tokenizer
    from slmkit.models.precision import cpu_has_native_bf16

    n_threads = threads()
    task, rows = example_rows(args.items)
    ref = smollm2()
    tokenizer = load_tokenizer(ref)
    prompts = [task.prompt_text(tokenizer, text) for text, _ in rows]
    fp32 = load_model(ref)

    def run(model, share: bool) -> list[str]:
        keep = gen.MIN_SHARED_TOKENS
        gen.MIN_SHARED_TOKENS = keep if share else 10**9
        try:
            out = gen.generate(
                model, tokenizer, prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size
            )
        finally:
            gen.MIN_SHARED_TOKENS = keep
        return [g.text for g in out]

    variants = [
        ("full prefill per row, fp32 (baseline)", fp32, False),
        ("shared system prompt, fp32", fp32, True),
    ]
    if cpu_has_native_bf16():
        variants.append(("shared system prompt, bf16 weights", load_model(ref, dtype="bfloat16"), True))

    print(
        f"{len(prompts)} prompts, up to {args.max_new_tokens} new tokens, batch {args.batch_size}, {n_threads} threads"
    )
    run(fp32, True)  # warm-up
    baseline_s, baseline = None, None
    for name, model, share in variants:
        seconds, texts = timed(lambda m=model, s=share: run(m, s))
        baseline_s, baseline = baseline_s or seconds, baseline or texts
        same = sum(a == b for a, b in zip(texts, baseline, strict=True))
        print(
            f"{name:<40} {seconds:6.1f}s  {len(prompts) / seconds:5.2f} items/s  x{baseline_s / seconds:4.2f}  "
            f"same answers {same}/{len(prompts)}"
        )


if __name__ == "__main__":
    main()
