"""Forgetting control by self-replay, and the measure of forgetting.

An adapter trained on one task drifts on everything else. Before training, the base model
answers general prompts (a list shipped with slmkit plus any the user adds) with its own
greedy answers; `train.replay.share` of the training examples are these pairs, with loss on
the base answer, which pulls the adapter back toward the base outside the task. The prompts go
through the plain chat template (no task system prompt): it is the base's general behaviour
that replay preserves. Answers are cached under `.slmkit/replay/`, keyed by the base weights,
the rendered prompts and the decoding settings, so later runs do not regenerate them.

A dozen shipped prompts are never trained on. How well the model predicts the base's answers
to them, before and after training, is the run's `replay_drift`, measured with or without
replay so runs with different shares compare.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmkit.config import ProjectConfig
from slmkit.errors import DataError, ModelError
from slmkit.train.batches import IGNORE, Encoded

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


@dataclass
class Replay:
    """What `prepare_replay` built: rows to add to training, and the drift baseline."""

    rows: list[Encoded]
    drift_rows: list[Encoded]
    drift_before: DriftScore
    record: dict[str, Any]
    drift_cache: str  # relative to the project root, like the replay cache in `record`

    def finish(self, model: Any, log: Callable[[str], None] = print) -> dict[str, Any]:
        """Run metrics: what was mixed in, and the drift of the trained `model` from the base."""
        after = measure_drift(model, self.drift_rows)
        log(
            f"drift from the base on {len(self.drift_rows)} held-out general prompts: per-token NLL "
            f"{self.drift_before.nll:.3f} -> {after.nll:.3f}, agreement with its answers "
            f"{self.drift_before.token_agreement:.1%} -> {after.token_agreement:.1%}"
        )
        return {
            "replay": self.record,
            "replay_drift": {
                "before": self.drift_before.as_dict(),
                "after": after.as_dict(),
                "prompts": len(self.drift_rows),
                "tokens": after.tokens,
                "cache": self.drift_cache,
            },
        }


def prepare_replay(
    config: ProjectConfig,
    base_sha256: str,
    model: Any,
    tokenizer: Any,
    task_rows: int,
    log: Callable[[str], None] = print,
) -> Replay:
    """Answer the general prompts with the base `model` (before any adapter is attached).

    Returns the replay rows (empty when `train.replay.share` is 0) and the drift baseline.
    """
    settings = config.train.replay
    max_seq_len = config.train.max_seq_len
    replay_prompts, held_out = shipped_prompts()
    user_prompts = read_prompts(config.resolve_path(settings.prompts_file)) if settings.prompts_file else []
    replay_prompts += user_prompts
    cache_dir = config.state_dir / "replay"

    def answered(prompts: list[str], purpose: str) -> CachedAnswers:
        cached = base_answers(
            model,
            tokenizer,
            prompts,
            base_sha256=base_sha256,
            max_new_tokens=settings.max_new_tokens,
            cache_dir=cache_dir,
        )
        if cached.generated:
            log(f"{purpose}: the base model answered {cached.generated} general prompts in {cached.seconds:.0f}s")
        return cached

    drift = answered(held_out, "drift check")
    drift_rows = [r for r in (encode_replay(tokenizer, a, max_seq_len) for a in drift.answers) if r is not None]
    record: dict[str, Any] = {"share": settings.share, "rows": 0}
    rows: list[Encoded] = []
    count = replay_count(task_rows, settings.share)
    if count:
        cached = answered(replay_prompts, "replay")
        encoded = [encode_replay(tokenizer, a, max_seq_len) for a in cached.answers]
        usable = [e for e in encoded if e is not None]
        if not usable:
            raise DataError(
                f"no replay prompt fits train.max_seq_len={max_seq_len}",
                hint="raise train.max_seq_len or shorten the prompts in train.replay.prompts_file",
            )
        rows = [usable[i] for i in choose(len(usable), count, config.train.seed)]
        record |= {
            "rows": len(rows),
            "task_rows": task_rows,
            "prompts": len(usable),
            "user_prompts": len(user_prompts),
            "prompts_too_long": len(encoded) - len(usable),
            "answers_cut": sum(e.truncated for e in rows),
            "unfinished_answers": sum(not a.finished for a in cached.answers),
            "cache": str(cached.path.relative_to(config.root)),
            "generated": cached.generated,
        }
        log(
            f"replay: {len(rows)} base-model answers to {len(usable)} general prompts mixed into "
            f"{task_rows} task examples ({settings.share:.0%})"
        )
    return Replay(rows, drift_rows, measure_drift(model, drift_rows), record, str(drift.path.relative_to(config.root)))


def replay_count(task_rows: int, share: float) -> int:
    """Replay rows so that they are `share` of all training rows."""
    return round(share * task_rows / (1.0 - share)) if share > 0 else 0


def choose(available: int, count: int, seed: int) -> list[int]:
    """`count` indices into `available` items: shuffled passes over all of them, so each repeats evenly."""
    rng = random.Random(seed)
    picked: list[int] = []
    while len(picked) < count:
        cycle = list(range(available))
        rng.shuffle(cycle)
        picked.extend(cycle)
    return picked[:count]


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
            ids = torch.tensor([row.input_ids], dtype=torch.long)
            logits = model(input_ids=ids, use_cache=False).logits[0, :-1].float()
            targets = torch.tensor(row.labels[1:], dtype=torch.long)
            keep = targets != IGNORE
            nll += float(F.cross_entropy(logits[keep], targets[keep], reduction="sum"))
            agree += int((logits[keep].argmax(-1) == targets[keep]).sum())
            count += int(keep.sum())
    model.train(was_training)
    return DriftScore(nll / max(count, 1), agree / max(count, 1), count)
