"""Early stopping sized from the data: patience in examples, a minimum share of an epoch, evidence printed."""

from __future__ import annotations

import pytest

from slmkit.config import TrainConfig
from slmkit.train.stopping import StoppingRule, paired_difference


def rule(steps_per_epoch: int = 100, total: int = 300, rows: int = 500, **settings: object) -> StoppingRule:
    cfg = TrainConfig(batch_size=8, **settings)  # type: ignore[arg-type]
    return StoppingRule.from_config(
        cfg, steps_per_epoch=steps_per_epoch, total_steps=total, validation_rows=rows, validation_available=rows
    )


def test_auto_validates_eight_times_an_epoch_and_never_stops_inside_the_first_epoch():
    r = rule()
    assert r.eval_every == 12 and r.patience_steps == 50 and r.min_steps == 100
    # The run that stopped at 20% of its first epoch: no new best since step 40, now at step 200 of 973.
    assert not r.should_stop(step=80, best_step=20)  # stale for 60 steps, but inside the first epoch
    assert not r.should_stop(step=140, best_step=100)  # past the epoch, stale for 40 < 50 steps
    assert r.should_stop(step=150, best_step=100)
    assert "every 12 steps (96 examples, 0.12 epoch)" in r.describe()
    assert "after 400 examples, 0.50 epoch without a new best validation loss, never before step 100" in r.describe()


def test_patience_in_examples_and_the_older_count_of_validations():
    assert rule(patience_examples=1600).patience_steps == 200
    older = rule(early_stopping_patience=3, eval_every=20)
    assert older.patience_steps == 60 and older.min_steps == 0 and older.should_stop(step=60, best_step=0)
    off = rule(early_stopping_patience=None)
    assert not off.should_stop(step=300, best_step=0) and "early stopping off" in off.describe()
    assert not rule(rows=0).enabled


def test_a_short_run_may_stop_before_its_epoch_ends_only_after_all_its_steps():
    r = rule(steps_per_epoch=100, total=40)  # max_steps 40: the minimum is the run's own end
    assert r.min_steps == 40


def test_the_decision_names_its_evidence():
    r = rule()
    line = r.decision(step=160, best_step=100, best=0.0412, latest=0.0433, paired=(0.0021, 0.0008))
    assert line.startswith("early stopping at step 160 (1.60 epoch): validation loss on 500 rows")
    assert "has not gone below 0.0412 (step 100) for 480 examples, 0.60 epoch" in line
    assert "+0.0021 ± 0.0008 (paired over the rows)" in line and line.endswith("keeping the adapter of step 100")


def test_paired_difference_is_the_mean_and_standard_error_of_row_differences():
    mean, se = paired_difference([1.0, 2.0, 3.0, 4.0], [0.5, 2.0, 2.5, 4.0])
    assert mean == pytest.approx(0.25) and se == pytest.approx(0.1443, abs=1e-4)
    assert paired_difference([1.0], [0.5]) is None and paired_difference([1.0, 2.0], []) is None


def test_zero_patience_is_refused():
    with pytest.raises(ValueError, match="must be >= 1"):
        TrainConfig(early_stopping_patience=0)
