"""Paired statistics on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from slmkit.eval.metrics import bootstrap
from slmkit.eval.paired import cohen_kappa, mcnemar_exact, newcombe_paired, paired_bootstrap, quadratic_kappa


def test_exact_mcnemar():
    # b=1, c=9: 2 * (C(10,0) + C(10,1)) / 2^10 = 22/1024
    assert mcnemar_exact(1, 9) == pytest.approx(0.0215, abs=1e-4) == mcnemar_exact(9, 1)
    assert mcnemar_exact(0, 6) == pytest.approx(2 / 64)
    assert mcnemar_exact(5, 5) == 1.0 and mcnemar_exact(0, 0) == 1.0


def test_newcombe_paired_interval():
    # Altman et al., Statistics with Confidence, table 6.2: both 14, gained 5, lost 0, neither 22.
    # p1 = 19/41, p2 = 14/41; Wilson(19/41) = (.3190, .6140), Wilson(14/41) = (.2135, .4971);
    # ad - bc = 308 > n/2, so phi = (308 - 20.5) / sqrt(19*22*14*27) = 0.7233;
    # low = 5/41 - sqrt(.1444^2 - 2*.7233*.1444*.1556 + .1556^2) = .1220 - .1105
    low, high = newcombe_paired(14, 5, 0, 22)
    assert low == pytest.approx(0.0115, abs=1e-3) and high == pytest.approx(0.2265, abs=1e-3)
    # No discordant pairs: the difference is 0 and the interval straddles it.
    low, high = newcombe_paired(30, 0, 0, 10)
    assert low < 0 < high and high - low < 0.2
    assert all(math.isnan(v) for v in newcombe_paired(0, 0, 0, 0))


def test_cohen_kappa_on_a_2x2_table():
    # yes/yes 20, yes/no 5, no/yes 10, no/no 15: po = 35/50 = .7; pe = .5*.6 + .5*.4 = .5; kappa = .2/.5
    first = ["y"] * 25 + ["n"] * 25
    second = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa(first, first) == 1.0
    assert math.isnan(cohen_kappa(["y", "y"], ["y", "y"]))


def test_paired_bootstrap_is_reproducible_and_brackets_the_difference():
    mine = [1, 1, 0, 1, 1, 1, 0, 1, 1, 1] * 3
    theirs = [1, 0, 0, 1, 0, 1, 0, 1, 1, 0] * 3

    def mean(values):
        return lambda idx: sum(values[i] for i in idx) / len(idx)

    diff, low, high = paired_bootstrap(mean(mine), mean(theirs), len(mine), rounds=500, seed=3)
    assert diff == pytest.approx(0.3) and low <= diff <= high and low > 0
    assert paired_bootstrap(mean(mine), mean(theirs), len(mine), rounds=500, seed=3) == (diff, low, high)
    assert paired_bootstrap(mean(mine), mean(mine), len(mine), rounds=100) == (0.0, 0.0, 0.0)


def test_bootstrap_drops_undefined_resamples_before_ranking():
    values = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    # Undefined (NaN) whenever the resample misses item 0; those must not scramble the order.
    low, high = bootstrap(lambda idx: 1.0 if 0 in idx else float("nan"), len(values), rounds=200)
    assert (low, high) == (1.0, 1.0)


def test_quadratic_kappa_by_hand():
    judge, human = [1, 2, 3, 4, 5], [1, 2, 3, 5, 5]
    # observed: mean squared difference = (0 + 0 + 0 + 1 + 0) / 5 = 0.2
    # expected: all 25 cross pairs (a_i - b_j)^2; per a = 1..5 the sums over b are 37, 20, 13, 16, 29
    # -> 115 / 25 = 4.6; kappa = 1 - 0.2 / 4.6 = 22/23
    assert quadratic_kappa(judge, human) == pytest.approx(22 / 23)
    # The textbook form with a 5x5 weight matrix (i - j)^2 / (k - 1)^2 gives the same number.
    k, n = 5, len(judge)
    pairs = list(zip(judge, human, strict=True))
    observed = [[pairs.count((i, j)) / n for j in range(1, 6)] for i in range(1, 6)]
    rows = [judge.count(i) / n for i in range(1, 6)]
    cols = [human.count(j) / n for j in range(1, 6)]
    weight = [[(i - j) ** 2 / (k - 1) ** 2 for j in range(k)] for i in range(k)]
    textbook = 1 - sum(weight[i][j] * observed[i][j] for i in range(k) for j in range(k)) / sum(
        weight[i][j] * rows[i] * cols[j] for i in range(k) for j in range(k)
    )
    assert textbook == pytest.approx(22 / 23)
    # A near miss costs little: unweighted kappa counts 4 vs 5 as a full disagreement
    # (po = 0.8, pe = 3 * 0.2 * 0.2 + 0.2 * 0.4 = 0.2 -> 0.75).
    assert cohen_kappa(judge, human) == pytest.approx(0.75)
    assert quadratic_kappa([1, 5], [5, 1]) == pytest.approx(-1.0)  # 1 - 16 / ((0 + 16 + 16 + 0) / 4)
    assert math.isnan(quadratic_kappa([3, 3], [3, 3])) and math.isnan(quadratic_kappa([], []))
