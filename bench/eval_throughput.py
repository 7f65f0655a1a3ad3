"""Evaluation speed: gold items answered one at a time against batched, the way `slmkit eval` decodes.

Both sides decode the real SmolLM2-135M-Instruct under the example task's JSON schema (as
serving does), greedy, with the answer length bounded by the schema (`answer_token_bound`) and
the system prompt's keys/values reused. Baseline: batch size 1, as a loop over items would run.
Then batches of `--batch-size`. Reports items/s, the ratio, and how many answers are the same
text on both sides (a padded batch may flip a near-tie).

    .venv/bin/python bench/eval_throughput.py [--items 32] [--batch-size 16]
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
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    from slmkit.models import load_model, load_tokenizer
    from slmkit.models.constrain import answer_token_bound
    from slmkit.models.generate import generate
    from slmkit.models.precision import weights_dtype

    n_threads = threads()
    task, rows = example_rows(args.items)
    ref = smollm2()
    tokenizer = load_tokenizer(ref)
    dtype = weights_dtype("auto")
    model = load_model(ref, dtype=dtype)
    prompts = [task.prompt_text(tokenizer, text) for text, _ in rows]
    bound = answer_token_bound(task.schema, tokenizer) or 64

    def run(batch_size: int) -> list[str]:
        out = generate(model, tokenizer, prompts, max_new_tokens=bound, batch_size=batch_size, schema=task.schema)
        return [g.text for g in out]

    run(args.batch_size)  # warm-up: compiles the schema grammar and touches every weight once
    print(
        f"{len(prompts)} gold-style items, SmolLM2-135M-Instruct ({dtype}), decoding under the schema, "
        f"at most {bound} new tokens (the schema's bound), {n_threads} threads"
    )
    one_s, one = timed(lambda: run(1))
    batched_s, batched = timed(lambda: run(args.batch_size))
    same = sum(a == b for a, b in zip(one, batched, strict=True))
    valid = sum(task.parse(text).valid for text in batched)
    print(f"{'one at a time (baseline)':<28}{one_s:>8.1f}s {len(prompts) / one_s:>7.2f} items/s  x1.00")
    print(
        f"{f'batched, {args.batch_size} per batch':<28}{batched_s:>8.1f}s {len(prompts) / batched_s:>7.2f} items/s  "
        f"x{one_s / batched_s:.2f}   same answers {same}/{len(prompts)}, schema-valid {valid}/{len(prompts)}"
    )
    print(f"target: batched >= 5x one at a time: {'met' if one_s / batched_s >= 5 else 'NOT met'}")


if __name__ == "__main__":
    main()
