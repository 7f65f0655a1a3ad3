"""The forgetting check: how far the adapter moved from the base outside its task.

Two measures, base and adapter side by side:
- on the 12 held-out general prompts the training run measures drift on, the base model's own
  greedy answers (cached under .slmkit/replay/, shared with training): how often the model's
  top token is the base's (token agreement) and their per-token NLL. The base agrees with
  itself by construction; the adapter's distance from that is the forgetting.
- perplexity on a short general English text shipped with slmkit (general_text.txt, written for
  slmkit): a language-modelling check that needs no generation.

The prompts, the base answers' cache and the drift score are models/general.py's, the same
code training's replay reads, so eval and training report the same numbers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmkit.config import ProjectConfig
from slmkit.models import load_model
from slmkit.models.general import base_answers, encode_replay, measure_drift, shipped_prompts
from slmkit.models.resolve import BaseModelRef

GENERAL_TEXT = Path(__file__).with_name("general_text.txt")
WINDOW = 256  # tokens per perplexity window: within every supported model's context


@dataclass(frozen=True)
class Forgetting:
    prompts: int
    answer_tokens: int
    drift: dict[str, dict[str, float]]  # side -> {nll, token_agreement}
    perplexity: dict[str, float]  # side -> perplexity on the general text
    text_tokens: int
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "prompts": self.prompts,
            "answer_tokens": self.answer_tokens,
            "base": {**self.drift["base"], "perplexity": round(self.perplexity["base"], 4)},
            "adapter": {**self.drift["adapter"], "perplexity": round(self.perplexity["adapter"], 4)},
            "text_tokens": self.text_tokens,
            "seconds": round(self.seconds, 2),
        }

    def line(self) -> str:
        base, adapter = self.drift["base"], self.drift["adapter"]
        return (
            f"forgetting on {self.prompts} general prompts: agreement with the base's answers "
            f"{base['token_agreement']:.1%} -> {adapter['token_agreement']:.1%}, NLL {base['nll']:.3f} -> "
            f"{adapter['nll']:.3f}; general-text perplexity {self.perplexity['base']:.2f} -> "
            f"{self.perplexity['adapter']:.2f} ({self.seconds:.1f}s)"
        )


def check_forgetting(
    config: ProjectConfig, base: BaseModelRef, tokenizer: Any, adapter_dir: Path, dtype: str
) -> Forgetting:
    """Base and adapter (merged, in `dtype`, as eval answers) on the held-out general prompts and text."""
    began = time.perf_counter()
    held_out = shipped_prompts()[1]
    text = GENERAL_TEXT.read_text(encoding="utf-8")
    drift: dict[str, dict[str, float]] = {}
    perplexity: dict[str, float] = {}
    rows: list[Any] = []
    for side, adapter in (("base", None), ("adapter", adapter_dir)):
        model = load_model(base, adapter=adapter, merge=True, dtype=dtype)
        if side == "base":
            cached = base_answers(
                model,
                tokenizer,
                held_out,
                base_sha256=base.sha256,
                max_new_tokens=config.train.replay.max_new_tokens,
                cache_dir=config.state_dir / "replay",
            )
            encoded = (encode_replay(tokenizer, a, config.train.max_seq_len) for a in cached.answers)
            rows = [r for r in encoded if r is not None]
        score = measure_drift(model, rows)
        drift[side] = score.as_dict()
        perplexity[side], text_tokens = text_perplexity(model, tokenizer, text)
        del model
    tokens = sum(r.answer_tokens for r in rows)
    return Forgetting(len(rows), tokens, drift, perplexity, text_tokens, time.perf_counter() - began)


def text_perplexity(model: Any, tokenizer: Any, text: str) -> tuple[float, int]:
    """exp(mean NLL per predicted token) over consecutive windows of the text; (perplexity, tokens)."""
    import torch
    import torch.nn.functional as F

    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    window = min(WINDOW, getattr(model.config, "max_position_embeddings", WINDOW) or WINDOW)
    total, count = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(ids) - 1, window):
            chunk = torch.tensor([ids[start : start + window]], dtype=torch.long, device=model.device)
            if chunk.shape[1] < 2:
                break
            logits = model(input_ids=chunk, use_cache=False).logits[0, :-1].float()
            total += float(F.cross_entropy(logits, chunk[0, 1:], reduction="sum"))
            count += chunk.shape[1] - 1
    return (math.exp(total / count) if count else float("nan")), count
