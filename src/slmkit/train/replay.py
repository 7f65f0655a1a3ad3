"""Forgetting control by self-replay.

An adapter trained on one task drifts on everything else. `train.replay.share` of the training
examples are the base model's own greedy answers to general prompts (models/general.py), with
loss on the base answer, which pulls the adapter back toward the base outside the task. The
dozen held-out prompts give the run's `replay_drift`, measured before and after training with
or without replay, so runs with different shares compare.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slmkit.config import ProjectConfig
from slmkit.errors import DataError
from slmkit.models.general import (
    CachedAnswers,
    DriftScore,
    base_answers,
    encode_replay,
    measure_drift,
    read_prompts,
    shipped_prompts,
)
from slmkit.models.tokens import Encoded


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
