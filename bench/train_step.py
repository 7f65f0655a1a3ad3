"""Training step speed on the real SmolLM2 + LoRA: slmkit's loss against a plain SFT forward.

Baseline: what a generic trainer does with a completion-only collator: the whole sequence
through the model, logits for every position, labels masked to the answer. Then slmkit's
answer_loss step by step: vocabulary projection only on answer positions, the shared system
prompt computed once per batch, and bf16 matmuls where the CPU has them. Same examples, same
weights (no optimizer step), so the losses must agree; the script checks that they do.

    .venv/bin/python bench/train_step.py [--examples 48] [--batch-size 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import example_rows, smollm2, threads, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model

    from slmkit.models import load_model, load_tokenizer
    from slmkit.models.precision import autocast, cpu_has_native_bf16
    from slmkit.train.batches import IGNORE, collate, encode_example, length_grouped_batches
    from slmkit.train.loss import answer_loss

    n_threads = threads()
    task, rows = example_rows(args.examples)
    ref = smollm2()
    tokenizer = load_tokenizer(ref, padding_side="right")
    encoded = [encode_example(task, tokenizer, text, output, 1024) for text, output in rows]
    batches = [[encoded[i] for i in b] for b in length_grouped_batches(encoded, args.batch_size, seed=0, epoch=0)]
    tokens = sum(len(e.input_ids) for e in encoded)
    model = get_peft_model(
        load_model(ref), LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    )
    model.train()
    pad = tokenizer.pad_token_id

    def plain() -> float:
        total = 0.0
        for batch in batches:
            b = collate(batch, pad, share_prefix=False)
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
            labels = b["labels"][:, 1:]
            loss = torch.nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.shape[-1]).float(),
                labels.reshape(-1),
                ignore_index=IGNORE,
                reduction="sum",
            )
            loss.backward()
            total += float(loss.detach())
        model.zero_grad(set_to_none=True)
        return total

    def slmkit(share_prefix: bool, precision: str) -> float:
        total = 0.0
        for batch in batches:
            with autocast(precision):  # type: ignore[arg-type]
                loss, _ = answer_loss(model, collate(batch, pad, share_prefix=share_prefix))
            loss.backward()
            total += float(loss.detach())
        model.zero_grad(set_to_none=True)
        return total

    variants = [
        ("plain full-sequence loss, fp32 (baseline)", plain),
        ("answer-only projection, fp32", lambda: slmkit(False, "fp32")),
        ("+ shared system prompt, fp32", lambda: slmkit(True, "fp32")),
    ]
    if cpu_has_native_bf16():
        variants.append(("+ shared system prompt, bf16 autocast", lambda: slmkit(True, "bf16")))

    print(f"{len(encoded)} examples, {tokens:,} tokens, batch {args.batch_size}, {n_threads} threads")
    slmkit(True, "fp32")  # warm-up: first-call allocations and kernel selection
    baseline_s, baseline_loss = None, None
    for name, fn in variants:
        seconds, loss = timed(fn, repeats=2)
        baseline_s = baseline_s or seconds
        baseline_loss = baseline_loss or loss
        drift = abs(loss - baseline_loss) / baseline_loss
        print(
            f"{name:<44} {seconds:7.1f}s  {tokens / seconds:7.0f} tok/s  x{baseline_s / seconds:4.2f}  "
            f"loss differs by {drift:.1e}"
        )


if __name__ == "__main__":
    main()
