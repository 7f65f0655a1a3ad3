"""Validation cadence and early stopping, sized from the data so that noise cannot stop a run.

A few dozen validation rows checked every 20 steps with a patience of three validations stopped
a 77-label run at 20% of its first epoch: the loss of 64 rows wanders more between two
checkpoints than training moves it. So, by default:

- validation uses the whole validation split, up to AUTO_VALIDATION_ROWS rows (a seeded sample
  stratified by label beyond that): the standard error of a paired difference of means falls as
  1/sqrt(rows), and at ~1,000 rows it is a few thousandths of a nat for a routing answer, below
  any difference worth acting on (the decision line prints it);
- it runs up to VALIDATIONS_PER_EPOCH times per epoch (at least every step of a tiny set), fewer
  when validating would cost more than VALIDATION_SHARE of the training compute (a forward pass
  costs FORWARD_COST of a training step per token), but at least MIN_VALIDATIONS_PER_EPOCH;
- patience is counted in training examples, not validations: the run stops only once
  PATIENCE_EPOCHS of an epoch has passed without a new best validation loss, and never before
  MIN_EPOCHS epochs (or the end of a shorter run);
- the decision is printed with its evidence: the best loss and when, the latest loss and its
  paired difference from the best with a standard error over the validation rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from slmkit.config import TrainConfig

AUTO_VALIDATION_ROWS = 1000
VALIDATIONS_PER_EPOCH = 8
MIN_VALIDATIONS_PER_EPOCH = 2
VALIDATION_SHARE = 0.1  # of the training compute
FORWARD_COST = 0.4  # a validation token / a training token, measured (bench/train_cost.py, docs/quality.md)
PATIENCE_EPOCHS = 0.5
MIN_EPOCHS = 1.0


@dataclass(frozen=True)
class StoppingRule:
    """When to validate and when a stalled validation loss stops the run, in optimizer steps."""

    enabled: bool
    eval_every: int  # optimizer steps between validations
    examples_per_step: int
    patience_steps: int  # steps without a new best before stopping
    min_steps: int  # never stop before this step
    steps_per_epoch: int
    validation_rows: int
    validation_available: int
    cadence: str = ""  # why fewer validations than VALIDATIONS_PER_EPOCH, when so

    @classmethod
    def from_config(
        cls,
        cfg: TrainConfig,
        *,
        steps_per_epoch: int,
        total_steps: int,
        validation_rows: int,
        validation_available: int,
        epoch_tokens: float | None = None,
        validation_tokens: float | None = None,
    ) -> StoppingRule:
        """`epoch_tokens` and `validation_tokens` (tokens computed by an epoch of training and by one
        validation) let the cadence keep validation under VALIDATION_SHARE of the compute."""
        examples_per_step = cfg.batch_size * cfg.grad_accum
        per_epoch = validations_per_epoch(epoch_tokens, validation_tokens)
        eval_every = cfg.eval_every or max(1, round(steps_per_epoch / per_epoch))
        setting = cfg.early_stopping_patience
        if isinstance(setting, int):  # counted in validations, as set: the older rule, no minimum
            patience, minimum = setting * eval_every, 0
        else:
            if cfg.patience_examples is not None:
                patience = math.ceil(cfg.patience_examples / examples_per_step)
            else:
                patience = max(2 * eval_every, math.ceil(PATIENCE_EPOCHS * steps_per_epoch))
            minimum = math.ceil(cfg.min_epochs_before_stopping * steps_per_epoch)
        return cls(
            enabled=setting is not None and validation_rows > 0,
            eval_every=eval_every,
            examples_per_step=examples_per_step,
            patience_steps=patience,
            min_steps=min(minimum, total_steps),
            steps_per_epoch=steps_per_epoch,
            validation_rows=validation_rows,
            validation_available=validation_available,
            cadence=""
            if cfg.eval_every or per_epoch == VALIDATIONS_PER_EPOCH
            else f"{per_epoch} an epoch, to keep validation under {VALIDATION_SHARE:.0%} of the training compute",
        )

    def should_stop(self, step: int, best_step: int) -> bool:
        return self.enabled and step >= self.min_steps and step - best_step >= self.patience_steps

    def describe(self) -> str:
        """The rule, printed before training."""
        rows = f"{self.validation_rows:,} validation rows" + (
            f" (a stratified sample of {self.validation_available:,})"
            if self.validation_rows < self.validation_available
            else " (the whole split)"
        )
        head = f"validation: {rows} every {self.eval_every} steps ({self._examples(self.eval_every)})"
        if self.cadence:
            head += f" ({self.cadence})"
        if not self.validation_rows:
            return head + "; no validation rows, so no early stopping (the last step's adapter is kept)"
        if not self.enabled:
            return head + "; early stopping off (the best step's adapter is kept)"
        return (
            f"{head}; early stopping after {self._examples(self.patience_steps)} without a new best validation "
            f"loss, never before step {self.min_steps} ({self._epochs(self.min_steps)})"
        )

    def decision(
        self, step: int, best_step: int, best: float, latest: float, paired: tuple[float, float] | None
    ) -> str:
        """Why the run stopped, with the numbers."""
        since = step - best_step
        evidence = ""
        if paired is not None:
            difference, se = paired
            evidence = f"; the latest validation is {difference:+.4f} ± {se:.4f} (paired over the rows) from the best"
        return (
            f"early stopping at step {step} ({self._epochs(step)}): validation loss on {self.validation_rows:,} rows "
            f"has not gone below {best:.4f} (step {best_step}) for {self._examples(since)} (patience "
            f"{self._examples(self.patience_steps)}, and past step {self.min_steps}); latest {latest:.4f}{evidence}; "
            f"keeping the adapter of step {best_step}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "eval_every": self.eval_every,
            "patience_examples": self.patience_steps * self.examples_per_step,
            "min_steps": self.min_steps,
            "validation_rows": self.validation_rows,
        }

    def _examples(self, steps: int) -> str:
        return f"{steps * self.examples_per_step:,} examples, {self._epochs(steps)}"

    def _epochs(self, steps: int) -> str:
        return f"{steps / max(self.steps_per_epoch, 1):.2f} epoch"


def validations_per_epoch(epoch_tokens: float | None, validation_tokens: float | None) -> int:
    """VALIDATIONS_PER_EPOCH, or fewer (down to MIN_VALIDATIONS_PER_EPOCH) when that many would cost more
    than VALIDATION_SHARE of an epoch's training compute."""
    if not epoch_tokens or not validation_tokens:
        return VALIDATIONS_PER_EPOCH
    affordable = math.floor(VALIDATION_SHARE * epoch_tokens / (FORWARD_COST * validation_tokens))
    return max(MIN_VALIDATIONS_PER_EPOCH, min(VALIDATIONS_PER_EPOCH, affordable))


def paired_difference(latest: Sequence[float], best: Sequence[float]) -> tuple[float, float] | None:
    """Mean of the per-row differences (latest - best) and its standard error; None without two rows."""
    n = len(latest)
    if n < 2 or len(best) != n:
        return None
    diffs = [a - b for a, b in zip(latest, best, strict=True)]
    mean = sum(diffs) / n
    variance = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    return mean, math.sqrt(variance / n)
