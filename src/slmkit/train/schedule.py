"""How long to train, decided from the data before training starts, and printed with its arithmetic.

`train.epochs: auto` (the default) gives a small set several passes and a large one fewer, by
the tokens an epoch computes (`slmkit.train.batches.prompt_cost`, printed on the line before):

    epochs = AUTO_TOKEN_BUDGET / tokens per epoch, rounded to a tenth, within [1, AUTO_MAX_EPOCHS]

AUTO_TOKEN_BUDGET is what SmolLM2-135M trains in about 40 minutes on a 2-core CPU
(bench/train_cost.py measures the rows/s behind it), so a set of any size is seen at least once,
a routing set of ~10k rows gets one to two passes inside the 45-minute budget of
bench/quality.py, and a set of a few hundred rows gets AUTO_MAX_EPOCHS. Early stopping
(slmkit.train.stopping) may end the run sooner; it never starts before one epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

AUTO_TOKEN_BUDGET = 1_000_000  # computed tokens; see the module docstring and docs/quality.md
AUTO_MAX_EPOCHS = 4.0
AUTO_MIN_EPOCHS = 1.0


@dataclass(frozen=True)
class Schedule:
    """The run's length in epochs and whether it was decided (auto) or set."""

    epochs: float
    decided: bool
    epoch_tokens: float

    @classmethod
    def plan(cls, setting: float | str, epoch_tokens: float) -> Schedule:
        if setting != "auto":
            return cls(float(setting), False, epoch_tokens)
        wanted = AUTO_TOKEN_BUDGET / max(epoch_tokens, 1.0)
        epochs = min(AUTO_MAX_EPOCHS, max(AUTO_MIN_EPOCHS, math.floor(wanted * 10) / 10))
        return cls(epochs, True, epoch_tokens)

    def line(self) -> str:
        """`epochs: auto = 1.8: ...`, printed before training."""
        total = self.epochs * self.epoch_tokens
        if not self.decided:
            return f"epochs: {self.epochs:g} (as set): {total:,.0f} tokens computed"
        wanted = AUTO_TOKEN_BUDGET / max(self.epoch_tokens, 1.0)
        bound = ""
        if wanted >= AUTO_MAX_EPOCHS:
            bound = f", at most {AUTO_MAX_EPOCHS:g}"
        elif wanted < AUTO_MIN_EPOCHS:
            bound = f", at least {AUTO_MIN_EPOCHS:g}: every row once"
        return (
            f"epochs: auto = {self.epochs:g} ({AUTO_TOKEN_BUDGET:,} tokens / {self.epoch_tokens:,.0f} per epoch"
            f"{bound}); {total:,.0f} tokens computed; early stopping may end it sooner"
        )

    def as_dict(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "decided": self.decided, "epoch_tokens": round(self.epoch_tokens)}
