"""Paired statistics: two models answering the same gold items, compared item by item.

Pairing removes the item-difficulty noise two independent samples would carry, so a small
gold set can still tell a regression from chance. Everything here is exact or resampled in
plain Python; no scipy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Hashable, Sequence

from slmkit.eval.metrics import wilson

Statistic = Callable[[Sequence[int]], float]


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for discordant pairs b (wrong -> right) and c (right -> wrong).

    Under no difference each discordant pair goes either way with probability 1/2, so the
    smaller count is Binomial(b + c, 1/2): p = min(1, 2 * P(X <= min(b, c))). 1.0 without
    discordant pairs.
    """
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def newcombe_paired(both: int, gained: int, lost: int, neither: int, z: float = 1.96) -> tuple[float, float]:
    """95% interval for p_candidate - p_release from a paired 2x2 table (Newcombe 1998, method 10).

    `both` right in both, `gained` right only in the candidate, `lost` right only in the release,
    `neither` wrong in both. Combines the Wilson intervals of the two marginal proportions with
    their (continuity-corrected) correlation; sane with few discordant pairs, unlike Wald.
    """
    n = both + gained + lost + neither
    if n == 0:
        return float("nan"), float("nan")
    p1, p2 = (both + gained) / n, (both + lost) / n
    w1, w2 = wilson(both + gained, n, z), wilson(both + lost, n, z)
    margins = (both + gained) * (lost + neither) * (both + lost) * (gained + neither)
    cross = both * neither - gained * lost
    corrected = cross - n / 2 if cross > n / 2 else (cross if cross < 0 else 0.0)
    phi = corrected / math.sqrt(margins) if margins else 0.0
    diff = p1 - p2
    low = diff - math.sqrt((p1 - w1.low) ** 2 - 2 * phi * (p1 - w1.low) * (w2.high - p2) + (w2.high - p2) ** 2)
    high = diff + math.sqrt((w1.high - p1) ** 2 - 2 * phi * (w1.high - p1) * (p2 - w2.low) + (p2 - w2.low) ** 2)
    return max(-1.0, low), min(1.0, high)


def paired_bootstrap(
    candidate: Statistic, release: Statistic, n: int, *, rounds: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """(difference, low, high): candidate - release on all n items, and its 95% percentile
    interval over `rounds` resamples of item indices, each resample scoring both models on
    the same items. Resamples where either statistic is undefined (NaN) are dropped."""
    everything = list(range(n))
    diff = candidate(everything) - release(everything)
    rng = random.Random(seed)
    values = []
    for _ in range(rounds):
        idx = [rng.randrange(n) for _ in range(n)]
        value = candidate(idx) - release(idx)
        if not math.isnan(value):
            values.append(value)
    if not values:
        return diff, float("nan"), float("nan")
    values.sort()
    return diff, values[int(0.025 * (len(values) - 1))], values[int(0.975 * (len(values) - 1))]


def cohen_kappa(first: Sequence[Hashable], second: Sequence[Hashable]) -> float:
    """Agreement beyond chance between two labelings of the same items: (po - pe) / (1 - pe).

    po is the share of items labelled alike, pe the agreement expected from each side's label
    frequencies alone. 1 = identical, 0 = chance; NaN when both always give one same label.
    """
    n = len(first)
    if n == 0 or n != len(second):
        return float("nan")
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    labels = set(first) | set(second)
    expected = sum((list(first).count(lab) / n) * (list(second).count(lab) / n) for lab in labels)
    return (observed - expected) / (1 - expected) if expected < 1 else float("nan")


def quadratic_kappa(first: Sequence[float], second: Sequence[float]) -> float:
    """Cohen's kappa with quadratic weights, for ordinal scores (a judge's 1-5 vs a person's).

    1 - sum w*O / sum w*E with w = (i - j)^2: a near miss costs little, a far one much, so it
    suits a scale where 4 vs 5 is closer than 1 vs 5. The (k-1)^2 normalisation of the weights
    cancels, so this is 1 - mean((a - b)^2) / mean over all cross pairs of (a_i - b_j)^2.
    NaN without items, or when both sides give one same score throughout.
    """
    n = len(first)
    if n == 0 or n != len(second):
        return float("nan")
    observed = sum((a - b) ** 2 for a, b in zip(first, second, strict=True)) / n
    expected = sum((a - b) ** 2 for a in first for b in second) / (n * n)
    return 1 - observed / expected if expected > 0 else float("nan")


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank q-th percentile (0 < q <= 100): the smallest value with at least q% of
    the values at or below it. NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]
