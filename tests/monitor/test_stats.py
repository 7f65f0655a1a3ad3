"""The drift statistics on cases small enough to compute by hand (the arithmetic is in each test)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from slmkit.config import DriftConfig
from slmkit.monitor.drift import run_drift
from slmkit.monitor.embedding import dequantize, quantize
from slmkit.monitor.stats import (
    OTHER,
    TwoSampleResult,
    chi_square,
    decide,
    holm,
    ks,
    ks_statistic,
    median_bandwidth,
    mmd2,
    mmd_test,
    psi,
)

# ----------------------------------------------------------------------------- chi-square


def test_chi_square_on_a_two_by_two_table() -> None:
    # Traffic a=30 b=10, reference a=20 b=20. Column totals 50 and 30, row totals 40 and 40, so every
    # expected count is half its column: 25, 25, 15, 15. Pearson: 2 * 5^2/25 + 2 * 5^2/15 = 2 + 10/3.
    result = chi_square({"a": 30, "b": 10}, {"a": 20, "b": 20})

    assert result.statistic == pytest.approx(2 + 10 / 3)
    assert result.detail["dof"] == 1
    # One degree of freedom: P(X > x) = erfc(sqrt(x / 2)).
    assert result.p_value == pytest.approx(math.erfc(math.sqrt((2 + 10 / 3) / 2)))
    # Shares 0.75/0.25 against 0.5/0.5: half of |0.25| + |-0.25|.
    assert result.effect == pytest.approx(0.25)
    assert (result.n, result.n_reference) == (40, 40)


def test_identical_label_mixes_show_no_drift_at_all() -> None:
    result = chi_square({"a": 10, "b": 30}, {"a": 5, "b": 15})
    assert result.statistic == pytest.approx(0.0)
    assert result.p_value == pytest.approx(1.0)
    assert result.effect == pytest.approx(0.0)


def test_rare_labels_are_pooled_so_the_approximation_holds() -> None:
    # c and d have expected counts of 2.5 and 2 per row (< 5): they are tested as one "(other)" column.
    current = {"a": 50, "b": 45, "c": 3, "d": 2}
    reference = {"a": 50, "b": 46, "c": 2, "d": 2}
    result = chi_square(current, reference)

    assert result.detail["labels"] == ["a", "b", OTHER]
    assert result.detail["dof"] == 2
    table = [[50, 45, 5], [50, 46, 4]]
    rows = [sum(r) for r in table]
    cols = [sum(c) for c in zip(*table, strict=True)]
    total = sum(rows)
    by_hand = sum(
        (table[i][j] - rows[i] * cols[j] / total) ** 2 / (rows[i] * cols[j] / total) for i in range(2) for j in range(3)
    )
    assert result.statistic == pytest.approx(by_hand)
    # The effect is on the labels themselves, not the pooled columns.
    shares = [abs(current[k] / 100 - reference[k] / 100) for k in "abcd"]
    assert result.effect == pytest.approx(sum(shares) / 2)


def test_a_label_the_reference_never_gave_is_drift_when_frequent() -> None:
    result = chi_square({"a": 60, "b": 20, "new": 20}, {"a": 75, "b": 25})
    assert result.p_value < 1e-4
    assert result.effect == pytest.approx(0.2)  # the 20% of traffic under a label never seen


# ----------------------------------------------------------------------------- KS and PSI


def test_ks_of_two_separated_samples_is_one_with_its_exact_p_value() -> None:
    # D = 1; of the C(6, 3) = 20 equally likely orderings of the pooled six values, only the two
    # fully separated ones reach D = 1, so the exact two-sided p-value is 2 / 20.
    result = ks([1, 2, 3], [4, 5, 6])
    assert result.statistic == 1.0
    assert result.p_value == pytest.approx(0.1)
    assert result.effect == 1.0


def test_ks_statistic_is_the_largest_gap_between_the_two_cdfs() -> None:
    # F_a: 1/3 at 1, 2/3 at 2, 1 at 3. F_b: 1/3 at 2.5, 2/3 at 5, 1 at 6. Largest gap at 3: 1 - 1/3.
    assert ks_statistic([1, 2, 3], [2.5, 5, 6]) == pytest.approx(2 / 3)
    assert ks([1, 2, 3], [2.5, 5, 6]).statistic == pytest.approx(2 / 3)


def test_psi_by_hand() -> None:
    # Two bins split at the reference's median 5.5: reference 0.5 / 0.5, current 4/5 = 0.8 / 0.2.
    value = psi([1, 2, 3, 4, 9], list(range(1, 11)), bins=2)
    assert value == pytest.approx(0.3 * math.log(0.8 / 0.5) + (-0.3) * math.log(0.2 / 0.5))
    assert psi(list(range(1, 11)), list(range(1, 11)), bins=2) == pytest.approx(0.0)


# ----------------------------------------------------------------------------- MMD^2


def test_mmd2_by_hand_on_four_points() -> None:
    # x = {0, 1}, y = {2, 3}, bandwidth 1: k(a, b) = exp(-(a - b)^2 / 2).
    # within x: k(0,1) = e^-0.5; within y: k(2,3) = e^-0.5; across: e^-2, e^-4.5, e^-0.5, e^-2.
    x, y = np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]])
    e = math.exp
    expected = e(-0.5) + e(-0.5) - 2 * (e(-2) + e(-4.5) + e(-0.5) + e(-2)) / 4
    assert mmd2(x, y, 1.0) == pytest.approx(expected)  # 0.768906...
    assert expected == pytest.approx(0.768906, abs=1e-6)


def test_mmd_permutation_p_value_is_exact_on_a_small_sample() -> None:
    # The 6 ways to split {0, 1, 2, 3} into two pairs give MMD^2 of 0.769 ({0,1}|{2,3} and its mirror),
    # -0.124 ({0,3}|{1,2} and mirror) and -0.645 ({0,2}|{1,3} and mirror): the observed split is reached
    # or beaten by 2 of 6, so p = 1/3.
    result = mmd_test(np.array([[0.0], [1.0]]), np.array([[2.0], [3.0]]), bandwidth=1.0, permutations=100)
    assert result.detail["exact"] is True and result.detail["permutations"] == 6
    assert result.statistic == pytest.approx(0.768906, abs=1e-6)
    assert result.p_value == pytest.approx(1 / 3)


def test_mmd_p_values_are_calibrated_under_no_drift_and_small_under_a_shift() -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(size=(60, 4))
    null_p = [
        mmd_test(rng.normal(size=(30, 4)), reference, permutations=199, seed=trial).p_value for trial in range(120)
    ]
    rejected = np.mean(np.array(null_p) < 0.05)
    assert 0.01 <= rejected <= 0.10, f"rejection rate {rejected:.3f} at alpha 0.05 under the null"
    shifted = mmd_test(rng.normal(size=(30, 4)) + 1.0, reference, permutations=199)
    assert shifted.p_value == pytest.approx(1 / 200)  # no relabeling beats it: the smallest p it can give
    assert shifted.effect > 0.1


def test_the_bandwidth_is_the_median_distance_of_the_reference() -> None:
    points = np.array([[0.0], [1.0], [3.0]])  # distances 1, 3, 2: median 2
    assert median_bandwidth(points) == pytest.approx(2.0)


# ----------------------------------------------------------------------------- deciding


def test_holm_adjustment_by_hand() -> None:
    # Sorted: 0.01 x 3 = 0.03; 0.03 x 2 = 0.06; 0.04 x 1 = 0.04, raised to 0.06 (non-decreasing).
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.001, 0.5]) == pytest.approx([0.002, 0.5])
    assert holm([0.9, 0.8]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([]) == []


def _result(p: float, effect: float, n: int = 500, n_reference: int = 500) -> TwoSampleResult:
    return TwoSampleResult("mmd", effect, p, effect, n, n_reference)


def test_drift_needs_enough_requests_a_small_p_and_a_real_effect() -> None:
    def verdict(result: TwoSampleResult, p: float) -> str:
        return decide(result, p, alpha=0.01, floor=0.002, min_n=100).reason

    assert verdict(_result(1e-6, 0.05, n=80), 1e-6) == "too few requests (80 < 100)"
    assert verdict(_result(1e-6, 0.05, n_reference=12), 1e-6) == "reference too small (12 < 30)"
    assert verdict(_result(0.004, 0.05), 0.012) == "p 0.012 >= alpha 0.01"
    # A million requests make a trivial difference "significant": the floor keeps it quiet.
    assert verdict(_result(1e-9, 0.0005), 1e-9) == "p 1e-09 but effect 0.0005 under its floor 0.002"
    decision = decide(_result(1e-4, 0.01), 3e-4, alpha=0.01, floor=0.002, min_n=100)
    assert decision.drift and decision.p_adjusted == 3e-4


def test_run_drift_corrects_the_tests_that_ran_together_and_skips_the_rest() -> None:
    cfg = DriftConfig(min_requests=50, min_label_shift=0.1, min_confidence_shift=0.1)
    labels = Counter({"billing": 80, "shipping": 20})
    reference_labels = Counter({"billing": 50, "shipping": 50})
    report = run_drift(
        cfg,
        labels=labels,
        reference_labels=reference_labels,
        confidences=[0.9] * 30,  # fewer than min_requests: not run
        reference_confidences=[0.9] * 100,
        embeddings=None,
        reference_embeddings=None,
    )
    assert set(report.results) == {"label"}
    assert report.skipped == {
        "confidence": "too few requests (30 < 50)",
        "input": "no reference (embedded training inputs)",
    }
    raw = chi_square(labels, reference_labels).p_value
    assert report.decisions["label"].p_adjusted == pytest.approx(raw)  # one test: Holm leaves it alone
    assert report.drift and report.metrics()["label_drift"] == 1.0
    assert report.metrics()["confidence_drift"] is None and report.metrics()["drift"] == 1.0


# ----------------------------------------------------------------------------- stored embeddings


def test_int8_embeddings_keep_the_direction() -> None:
    rng = np.random.default_rng(0)
    rows = rng.normal(size=(50, 384)).astype(np.float32)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    blobs = quantize(rows)
    assert all(len(blob) == 384 for blob in blobs)
    back = dequantize(blobs)
    cosines = (rows * back).sum(axis=1)
    assert cosines.min() > 0.999
    assert np.allclose(np.linalg.norm(back, axis=1), 1.0, atol=1e-5)
