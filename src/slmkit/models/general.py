"""The base model's general behaviour, and how far a model has moved from it.

Before training, the base model answers general prompts (a list shipped with slmkit plus any
the user adds) with its own greedy answers, rendered through the plain chat template (no task
system prompt). Answers are cached under `.slmkit/replay/`, keyed by the base weights, the
rendered prompts and the decoding settings, so later runs do not regenerate them.

A dozen shipped prompts are never trained on. How well a model predicts the base's answers to
them is its drift from the base: training measures it before and after (and mixes the other
answers back in as replay), eval's forgetting check measures base and adapter side by side.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmkit.errors import DataError, ModelError
from slmkit.models.tokens import IGNORE, Encoded

SHIPPED_PROMPTS = Path(__file__).with_name("general_prompts.jsonl")
CACHE_FORMAT = 1  # bump when the cached rows or their meaning change


@dataclass(frozen=True)
class BaseAnswer:
    prompt: str  # the user's message, as written
    answer: str  # the base model's greedy answer
    finished: bool  # ended on an end-of-turn token, not on max_new_tokens


@dataclass(frozen=True)
class CachedAnswers:
    answers: list[BaseAnswer]
    path: Path
    generated: int  # 0 when every answer came from the cache
    seconds: float


@dataclass(frozen=True)
class DriftScore:
    """How closely a model follows the base's own answers on the held-out general prompts."""

    nll: float  # mean negative log-likelihood per answer token (the base scores its own answers low)
    token_agreement: float  # share of answer tokens that are the model's top choice given the ones before
    tokens: int

    def as_dict(self) -> dict[str, float]:
        return {"nll": round(self.nll, 5), "token_agreement": round(self.token_agreement, 5)}


def shipped_prompts() -> tuple[list[str], list[str]]:
    """(prompts for replay, prompts held out to measure drift) from the list shipped with slmkit."""
    replay: list[str] = []
    held_out: list[str] = []
    for record in _read_records(SHIPPED_PROMPTS):
        (held_out if record.get("held_out") else replay).append(record["prompt"])
    return replay, held_out


def read_prompts(path: Path) -> list[str]:
    """The `prompt` of every line of a JSONL file; a bad line is a DataError naming file and line."""
    if not path.is_file():
        raise DataError(
            f"train.replay.prompts_file not found: {path}",
            hint='point it at a JSONL file with one {"prompt": ...} per line, relative to slmkit.yaml',
        )
    prompts = [r["prompt"] for r in _read_records(path)]
    if not prompts:
        raise DataError(f"{path} has no prompts", hint='add lines like {"prompt": "Explain what a VPN is."}')
    return prompts


def _read_records(path: Path) -> list[dict[str, Any]]:
    records = []
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}:{number}: not valid JSON ({exc.msg})", hint="each line must be one JSON object"
                ) from exc
            if (
                not isinstance(record, dict)
                or not isinstance(record.get("prompt"), str)
                or not record["prompt"].strip()
            ):
                raise DataError(
                    f"{path}:{number}: needs a non-empty string field `prompt`",
                    hint='write each line as {"prompt": "..."}',
                )
            records.append(record)
    return records


def render_prompt(tokenizer: Any, prompt: str) -> str:
    """The prompt as the base model sees it in plain chat: the template's defaults, no task system prompt."""
    return str(
        tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False)
    )


def base_answers(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    base_sha256: str,
    max_new_tokens: int,
    cache_dir: Path,
) -> CachedAnswers:
    """The base model's greedy answers to `prompts`, generated once and then read from `cache_dir`."""
    from slmkit.models.generate import generate

    rendered = [render_prompt(tokenizer, p) for p in prompts]
    key = {
        "format": CACHE_FORMAT,
        "base_sha256": base_sha256,
        # The rendered prompts: a changed list or chat template is a different set of answers.
        "prompts_sha256": hashlib.sha256(json.dumps(rendered).encode()).hexdigest(),
        "decoding": {"greedy": True, "max_new_tokens": max_new_tokens},
        # A 4-bit or bf16 base answers differently from the float32 one.
        "dtype": str(getattr(model, "dtype", "")),
        "quantization": str(getattr(model.config, "quantization_config", None)),
    }
    path = cache_dir / f"{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]}.jsonl"
    if path.exists():
        answers = [BaseAnswer(**json.loads(line)) for line in path.read_text(encoding="utf-8").splitlines()]
        if [a.prompt for a in answers] == list(prompts):
            return CachedAnswers(answers, path, 0, 0.0)
    began = time.perf_counter()
    generations = generate(model, tokenizer, rendered, max_new_tokens=max_new_tokens)
    answers = [BaseAnswer(p, g.text, g.finished) for p, g in zip(prompts, generations, strict=True)]
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Written to a temp name and renamed: a cache file that exists is complete.
    temp = path.with_suffix(f".{os.getpid()}.tmp")
    temp.write_text("".join(json.dumps(a.__dict__, ensure_ascii=False) + "\n" for a in answers), encoding="utf-8")
    temp.replace(path)
    return CachedAnswers(answers, path, len(answers), time.perf_counter() - began)


def encode_replay(tokenizer: Any, answer: BaseAnswer, max_seq_len: int) -> Encoded | None:
    """A plain chat example with loss on the base answer; None when the prompt alone does not fit.

    An answer cut by max_new_tokens carries no end-of-turn marker, so the adapter is not taught
    to stop mid-sentence. An answer too long for max_seq_len loses its end.
    """
    prompt = render_prompt(tokenizer, answer.prompt)
    messages = [{"role": "user", "content": answer.prompt}, {"role": "assistant", "content": answer.answer}]
    full = str(tokenizer.apply_chat_template(messages, tokenize=False))
    if not full.startswith(prompt):
        raise ModelError(
            "the chat template renders the prompt differently with and without the answer, so "
            "the answer tokens cannot be isolated",
            hint="use a model whose chat template appends the assistant turn after the generation prompt",
        )
    completion = full[len(prompt) :]
    if not answer.finished and completion.startswith(answer.answer):
        completion = answer.answer
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    room = max_seq_len - len(prompt_ids)
    if room < 1 or not answer_ids:
        return None
    truncated = len(answer_ids) > room
    answer_ids = answer_ids[:room]
    return Encoded(
        input_ids=prompt_ids + answer_ids, labels=[IGNORE] * len(prompt_ids) + answer_ids, truncated=truncated
    )


def measure_drift(model: Any, rows: Sequence[Encoded]) -> DriftScore:
    """Per-token NLL of the base's answers under `model`, and how often its top token is the base's.

    One row at a time, without padding, in the model's own dtype: the score depends on the
    weights only, not on batching or the training precision.
    """
    import torch
    import torch.nn.functional as F

    was_training = model.training
    model.eval()
    nll, agree, count = 0.0, 0, 0
    with torch.no_grad():
        for row in rows:
            ids = torch.tensor([row.input_ids], dtype=torch.long, device=model.device)
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
            targets = torch.tensor(row.labels[1:], dtype=torch.long, device=logits.device)
            keep = targets != IGNORE
            nll += float(F.cross_entropy(logits[keep], targets[keep], reduction="sum"))
            agree += int((logits[keep].argmax(-1) == targets[keep]).sum())
            count += int(keep.sum())
    model.train(was_training)
    return DriftScore(nll / max(count, 1), agree / max(count, 1), count)
