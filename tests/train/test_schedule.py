"""Training length and validation cadence decided from the data size, printed before training."""

from __future__ import annotations

import pytest

from slmkit.config import TrainConfig
from slmkit.train.schedule import AUTO_MAX_EPOCHS, AUTO_TOKEN_BUDGET, Schedule
from slmkit.train.stopping import MIN_VALIDATIONS_PER_EPOCH, VALIDATIONS_PER_EPOCH, StoppingRule


def test_auto_epochs_give_small_sets_more_passes_and_large_sets_at_least_one():
    small = Schedule.plan("auto", epoch_tokens=20_000)
    assert small.epochs == AUTO_MAX_EPOCHS and f"at most {AUTO_MAX_EPOCHS:g}" in small.line()
    middle = Schedule.plan("auto", epoch_tokens=AUTO_TOKEN_BUDGET / 1.87)
    assert middle.epochs == pytest.approx(1.8)  # rounded down to a tenth: never over the budget
    assert middle.line().startswith(f"epochs: auto = 1.8 ({AUTO_TOKEN_BUDGET:,} tokens / ")
    large = Schedule.plan("auto", epoch_tokens=AUTO_TOKEN_BUDGET * 3)
    assert large.epochs == 1.0 and "at least 1: every row once" in large.line()
    assert Schedule.plan(2.5, epoch_tokens=1000).line() == "epochs: 2.5 (as set): 2,500 tokens computed"


def test_epochs_setting_accepts_auto_or_a_positive_number():
    assert TrainConfig().epochs == "auto" and TrainConfig(epochs=2).epochs == 2.0
    with pytest.raises(ValueError, match="must be > 0 or auto"):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError):
        TrainConfig(epochs="many")  # type: ignore[arg-type]


def rule(epoch_tokens: float, validation_tokens: float, **settings: object) -> StoppingRule:
    cfg = TrainConfig(batch_size=8, **settings)  # type: ignore[arg-type]
    return StoppingRule.from_config(
        cfg,
        steps_per_epoch=1000,
        total_steps=2000,
        validation_rows=1000,
        validation_available=1000,
        epoch_tokens=epoch_tokens,
        validation_tokens=validation_tokens,
    )


def test_validation_cadence_keeps_validation_a_small_share_of_the_compute():
    cheap = rule(epoch_tokens=10_000_000, validation_tokens=30_000)  # a large epoch, a small validation
    assert cheap.eval_every == 1000 // VALIDATIONS_PER_EPOCH and "to keep validation under" not in cheap.describe()
    costly = rule(epoch_tokens=270_000, validation_tokens=30_000)  # hwu64-like: 9k rows, 1k validation rows
    assert costly.eval_every == 1000 // MIN_VALIDATIONS_PER_EPOCH
    assert f"{MIN_VALIDATIONS_PER_EPOCH} an epoch, to keep validation under 10% of the training compute" in (
        costly.describe()
    )
    middle = rule(epoch_tokens=600_000, validation_tokens=30_000)
    assert middle.eval_every == 1000 // 5  # floor(0.1 * 600k / (0.4 * 30k)) = 5 validations an epoch
    assert rule(epoch_tokens=270_000, validation_tokens=30_000, eval_every=7).eval_every == 7  # as set
