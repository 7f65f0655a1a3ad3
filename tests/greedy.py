"""Greedy answer tokens for a few chat prompts: the comparison the merge and method tests make.

Plain torch + transformers calls only, so a test can also run it in a fresh interpreter where
PEFT cannot be imported.
"""

from __future__ import annotations

from typing import Any


def greedy_ids(model: Any, tokenizer: Any, texts: list[str], n: int) -> list[list[int]]:
    """The first `n` greedy tokens the model answers each text with, as a single user turn."""
    import torch

    out = []
    for text in texts:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True)
        ids = torch.tensor([ids["input_ids"] if hasattr(ids, "keys") else ids])
        with torch.inference_mode():
            gen = model.generate(input_ids=ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
        out.append(gen[0, ids.shape[1] :].tolist())
    return out
