"""Batched greedy generation, shared by evaluation and serving so both decode the same way."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finished: bool  # ended on an end-of-turn token, not on the length limit
    seconds: float  # wall time of the batch it ran in


def generate(
    model: Any,
    tokenizer: Any,
    prompts: list[str],
    *,
    max_new_tokens: int,
    batch_size: int = 16,
    temperature: float = 0.0,
    seed: int | None = None,
) -> list[Generation]:
    """Completions for fully rendered prompts, in input order; greedy unless temperature > 0.

    Prompts are grouped by length so a batch carries little padding; padding is on the left
    so every row's answer starts at the same position.
    """
    import torch

    if not prompts:
        return []
    stop_ids = _stop_token_ids(model, tokenizer)
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    results: list[Generation | None] = [None] * len(prompts)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for r, i in enumerate(rows):
            ids = encoded[i]
            input_ids[r, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention[r, width - len(ids) :] = 1
        began = time.perf_counter()
        sampling: dict[str, Any] = {"do_sample": False}
        if temperature > 0:
            sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
            if seed is not None:
                torch.manual_seed(seed + start)
        with torch.inference_mode():
            output = model.generate(
                input_ids=input_ids,
                attention_mask=attention,
                max_new_tokens=max_new_tokens,
                num_beams=1,
                **sampling,
                pad_token_id=pad_id,
                eos_token_id=stop_ids,
            )
        seconds = time.perf_counter() - began
        for r, i in enumerate(rows):
            new = output[r, width:].tolist()
            finished = False
            for cut, token in enumerate(new):
                if token in stop_ids:
                    new, finished = new[:cut], True
                    break
            results[i] = Generation(
                text=tokenizer.decode(new, skip_special_tokens=True),
                prompt_tokens=len(encoded[i]),
                completion_tokens=len(new) + (1 if finished else 0),
                finished=finished,
                seconds=seconds,
            )
    return [g for g in results if g is not None]


def _stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """End-of-turn ids: the tokenizer's eos plus the generation config's (chat models often differ)."""
    ids: list[int] = []
    for value in (tokenizer.eos_token_id, getattr(model.generation_config, "eos_token_id", None)):
        for token in value if isinstance(value, list) else [value]:
            if token is not None and token not in ids:
                ids.append(int(token))
    if not ids:
        raise ValueError("the tokenizer has no end-of-sequence token; generation would never stop")
    return ids
