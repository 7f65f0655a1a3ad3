"""The refusal threshold: chosen on validation for a target refusal precision, reported with its curve."""

from __future__ import annotations

import pytest

from slmkit.config import TaskConfig
from slmkit.eval.answer import refuse_low_confidence
from slmkit.eval.refusal import MIN_REFUSED, choose_threshold, curve, curve_point
from slmkit.models.generate import Generation
from slmkit.models.labels import LabelChoice
from slmkit.task import Task

# 40 answers: the 12 least confident are 10 wrong + 2 right; above them, 2 wrong among 28.
PROBS = [0.10 + 0.01 * i for i in range(12)] + [0.60 + 0.01 * i for i in range(28)]
RIGHT = [i in (3, 7) for i in range(12)] + [i not in (5, 20) for i in range(28)]


def test_the_curve_trades_coverage_for_accuracy():
    point = curve_point(PROBS, RIGHT, 0.5)
    assert point.coverage == pytest.approx(28 / 40) and point.refused == 12
    assert point.accuracy == pytest.approx(26 / 28) and point.refusal_precision == pytest.approx(10 / 12)
    everything = curve_point(PROBS, RIGHT, 0.0)
    assert everything.coverage == 1.0 and everything.refusal_precision is None
    points = curve(PROBS, RIGHT, [0.555])
    assert [p.threshold for p in points] == sorted(p.threshold for p in points) and 0.555 in [
        p.threshold for p in points
    ]


def test_the_largest_threshold_meeting_the_target_precision_is_chosen():
    threshold = choose_threshold(PROBS, RIGHT, 0.8)
    # Refusing below 0.60 refuses the 12 low ones (10/12 = 0.83 wrong); refusing more mixes in right answers.
    assert threshold == pytest.approx(0.60)
    assert curve_point(PROBS, RIGHT, threshold).refusal_precision >= 0.8
    assert choose_threshold(PROBS, RIGHT, 0.99) == 0.0  # never that precise: never refuse


def test_a_handful_of_refusals_cannot_set_the_threshold():
    probs, right = [0.1, 0.2, 0.9, 0.95], [False, False, True, True]
    assert MIN_REFUSED > 2 and choose_threshold(probs, right, 0.5) == 0.0


def test_answers_under_the_threshold_become_the_refusal():
    cfg = TaskConfig(
        name="t",
        input_fields=["text"],
        system_prompt="Route it.",
        label_field="team",
        refusal={"output": {"team": "unknown"}},
    )
    task = Task(cfg, {"type": "object", "properties": {"team": {"enum": ["network", "unknown"]}}, "required": ["team"]})

    def answer(p: float) -> Generation:
        return Generation('{"team": "network"}', 10, 5, True, 0.1, label=LabelChoice("network", p, (("network", p),)))

    answers = [answer(0.3), answer(0.9)]
    assert refuse_low_confidence(task, answers, 0.5) == [True, False]
    assert [a.text for a in answers] == ['{"team": "unknown"}', '{"team": "network"}']
    assert refuse_low_confidence(task, [answer(0.3)], 0.0) == [False]  # no threshold: nothing refused
