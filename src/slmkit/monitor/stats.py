"""Two-sample drift statistics on numpy + scipy: each returns a statistic, a p-value and an effect size.

A p-value alone cries wolf: with enough traffic any difference is "significant", and with
three tests per window one of them is below 0.05 by chance one window in seven. So every test
here reports an effect size next to its p-value, in units a person can judge (the share of
traffic whose label moved, the largest gap between two distribution curves, the kernel
distance between input embeddings), and `decide` calls drift only when the p-value survives a
correction across the window's tests, the effect clears its floor, and both samples are large
enough to mean anything.

- `chi_square`: the label mix of the traffic against a reference sample (a 2 x K table).
- `ks`: a distribution of numbers (confidences) against a reference sample; `psi` beside it.
- `mmd_test`: input embeddings against a reference sample: unbiased MMD^2 with an RBF kernel
  and a permutation p-value (exact when the sample is small enough to enumerate every split).
- `holm`: Holm's step-down adjustment of the p-values of one window's tests.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

OTHER = "(other)"  # the merged category of labels too rare to test on their own
MIN_REFERENCE = 30  # a reference sample smaller than this never calls drift


@dataclass(frozen=True)
class TwoSampleResult:
    """One two-sample test: n is the current sample, n_reference the reference it was compared with."""

    test: str
    statistic: float
    p_value: float
    effect: float
    n: int
    n_reference: int
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ----------------------------------------------------------------------------- labels


def chi_square(
    current: Mapping[str, int], reference: Mapping[str, int], *, min_expected: float = 5.0
) -> TwoSampleResult:
    """Pearson's chi-square test of homogeneity of two label counts; effect = total variation distance.

    Both samples are samples (the reference is the eval's predictions on a few hundred gold items,
    not a known truth), so this is the 2 x K contingency test, not goodness of fit. Labels whose
    expected count is under `min_expected` in either row are pooled into one "(other)" column,
    the usual condition for the chi-square approximation; with fewer than two columns left there
    is nothing to test (p = 1). The effect is the total variation distance between the two label
    shares, on the unpooled labels: the share of traffic that would have to change label for the
    mixes to agree.
    """
    labels = sorted(set(current) | set(reference))
    cur = np.array([max(int(current.get(k, 0)), 0) for k in labels], dtype=float)
    ref = np.array([max(int(reference.get(k, 0)), 0) for k in labels], dtype=float)
    n, m = int(cur.sum()), int(ref.sum())
    tvd = 0.5 * float(np.abs(cur / n - ref / m).sum()) if n and m else 0.0
    if not n or not m:
        return TwoSampleResult("chi_square", 0.0, 1.0, tvd, n, m, {"labels": labels, "dof": 0})
    total = cur + ref
    keep = np.minimum(total * n / (n + m), total * m / (n + m)) >= min_expected
    columns = [k for k, kept in zip(labels, keep, strict=True) if kept]
    table = np.vstack([cur[keep], ref[keep]])
    if (~keep).any():
        table = np.hstack([table, np.array([[cur[~keep].sum()], [ref[~keep].sum()]])])
        columns.append(OTHER)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return TwoSampleResult("chi_square", 0.0, 1.0, tvd, n, m, {"labels": columns, "dof": 0})
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    dof = table.shape[1] - 1
    from scipy.stats import chi2

    return TwoSampleResult(
        "chi_square", statistic, float(chi2.sf(statistic, dof)), tvd, n, m, {"labels": columns, "dof": dof}
    )


# ----------------------------------------------------------------------------- numbers


def ks(current: Sequence[float], reference: Sequence[float]) -> TwoSampleResult:
    """Two-sample Kolmogorov-Smirnov test; the effect is D itself (the largest gap between the two CDFs).

    The p-value is exact for small samples and asymptotic otherwise (scipy's `method="auto"`);
    with ties (confidences of 1.0) it is conservative. The population stability index over the
    reference's deciles is reported beside it, as many teams read PSI.
    """
    a = np.asarray(current, dtype=float)
    b = np.asarray(reference, dtype=float)
    if not len(a) or not len(b):
        return TwoSampleResult("ks", 0.0, 1.0, 0.0, len(a), len(b))
    from scipy.stats import ks_2samp

    result = ks_2samp(a, b, alternative="two-sided", method="auto")
    statistic = float(result.statistic)
    return TwoSampleResult("ks", statistic, float(result.pvalue), statistic, len(a), len(b), {"psi": psi(a, b)})


def ks_statistic(current: Sequence[float], reference: Sequence[float]) -> float:
    """D = max |F_current(x) - F_reference(x)| over every observed x (the definition, for checking)."""
    a, b = np.sort(np.asarray(current, dtype=float)), np.sort(np.asarray(reference, dtype=float))
    points = np.concatenate([a, b])
    fa = np.searchsorted(a, points, side="right") / len(a)
    fb = np.searchsorted(b, points, side="right") / len(b)
    return float(np.abs(fa - fb).max())


def psi(
    current: Sequence[float] | np.ndarray,
    reference: Sequence[float] | np.ndarray,
    *,
    bins: int = 10,
    floor: float = 1e-4,
) -> float:
    """Population stability index: sum over bins of (c - r) * ln(c / r), bins at the reference's quantiles.

    Shares are floored at `floor` so an empty bin contributes a large but finite term. Rules of
    thumb: under 0.1 stable, 0.1-0.25 moderate, over 0.25 a shift.
    """
    a, b = np.asarray(current, dtype=float), np.asarray(reference, dtype=float)
    if not len(a) or not len(b):
        return 0.0
    edges = np.unique(np.quantile(b, np.linspace(0, 1, bins + 1)[1:-1]))
    c = np.bincount(np.searchsorted(edges, a, side="right"), minlength=len(edges) + 1) / len(a)
    r = np.bincount(np.searchsorted(edges, b, side="right"), minlength=len(edges) + 1) / len(b)
    c, r = np.maximum(c, floor), np.maximum(r, floor)
    return float(((c - r) * np.log(c / r)).sum())


# ----------------------------------------------------------------------------- embeddings


def median_bandwidth(x: np.ndarray, *, max_points: int = 1000, seed: int = 0) -> float:
    """The median pairwise Euclidean distance of the rows of `x` (a subsample past `max_points`)."""
    x = np.asarray(x, dtype=np.float64)
    if len(x) > max_points:
        x = x[np.random.default_rng(seed).choice(len(x), max_points, replace=False)]
    d2 = _squared_distances(x, x)
    upper = d2[np.triu_indices(len(x), k=1)]
    distance = float(np.sqrt(np.median(upper))) if len(upper) else 1.0
    return distance if distance > 0 else 1.0


def rbf_kernel(x: np.ndarray, y: np.ndarray, bandwidth: float) -> np.ndarray:
    """k(a, b) = exp(-|a - b|^2 / (2 * bandwidth^2))."""
    return np.exp(-_squared_distances(x, y) / (2.0 * bandwidth**2))


def mmd2(x: np.ndarray, y: np.ndarray, bandwidth: float) -> float:
    """The unbiased estimate of MMD^2 between the samples x and y (rows), RBF kernel.

    mean k(x_i, x_j) over i != j + mean k(y_i, y_j) over i != j - 2 mean k(x_i, y_j). It is 0 in
    expectation when both come from one distribution, and can be slightly negative.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        raise ValueError(f"MMD^2 needs at least 2 rows in each sample (got {n} and {m})")
    kxx, kyy, kxy = rbf_kernel(x, x, bandwidth), rbf_kernel(y, y, bandwidth), rbf_kernel(x, y, bandwidth)
    return float(
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean()
    )


def mmd_test(
    current: np.ndarray,
    reference: np.ndarray,
    *,
    bandwidth: float | None = None,
    permutations: int = 1000,
    seed: int = 0,
) -> TwoSampleResult:
    """MMD^2 (RBF kernel) of `current` against `reference`, with a permutation p-value.

    The kernel is fixed before the test (the bandwidth comes from the reference alone unless
    given), so MMD^2 values of different windows are on one scale and the effect floor means
    the same thing in every window. The p-value is the share of relabelings of the pooled rows
    whose MMD^2 is at least the observed one: every split when there are no more than
    `permutations` of them (exact), otherwise `permutations` random ones plus the observed
    labelling, (1 + #{>=}) / (1 + permutations), which is never 0.

    The pooled kernel matrix is computed once; each relabeling needs only a^T K a for its
    indicator vector a, so a block of relabelings is one matrix product.
    """
    x = np.asarray(current, dtype=np.float64)
    y = np.asarray(reference, dtype=np.float64)
    n, m = len(x), len(y)
    if n < 2 or m < 2:
        return TwoSampleResult("mmd", 0.0, 1.0, 0.0, n, m, {"reason": "fewer than 2 rows in a sample"})
    sigma = bandwidth if bandwidth is not None else median_bandwidth(y, seed=seed)
    pooled = np.vstack([x, y])
    kernel = rbf_kernel(pooled, pooled, sigma)
    np.fill_diagonal(kernel, 0.0)  # the unbiased estimate leaves i == j out
    total, row_sums = kernel.sum(), kernel.sum(axis=1)

    def statistic(indicators: np.ndarray) -> np.ndarray:
        """MMD^2 of each labeling: column j of `indicators` is 1 on the rows labelled `current`."""
        within_x = np.einsum("ij,ij->j", indicators, kernel @ indicators)
        cross = indicators.T @ row_sums - within_x
        within_y = total - 2 * cross - within_x
        return within_x / (n * (n - 1)) + within_y / (m * (m - 1)) - 2 * cross / (n * m)

    observed_labels = np.zeros((n + m, 1))
    observed_labels[:n] = 1.0
    observed = float(statistic(observed_labels)[0])
    splits = math.comb(n + m, n)
    if splits <= permutations:
        labels = np.zeros((n + m, splits))
        for j, chosen in enumerate(itertools.combinations(range(n + m), n)):
            labels[list(chosen), j] = 1.0
        values = statistic(labels)
        p_value = float(np.mean(values >= observed - 1e-12))
        exact = True
    else:
        rng = np.random.default_rng(seed)
        exceed, done, block = 0, 0, 200
        # float32 for the relabelings: the kernel product dominates the cost, and a p-value needs no more.
        kernel32 = kernel.astype(np.float32)
        while done < permutations:
            size = min(block, permutations - done)
            labels32 = np.zeros((n + m, size), dtype=np.float32)
            for j in range(size):
                labels32[rng.permutation(n + m)[:n], j] = 1.0
            within_x = np.einsum("ij,ij->j", labels32, kernel32 @ labels32).astype(np.float64)
            cross = labels32.T.astype(np.float64) @ row_sums - within_x
            within_y = total - 2 * cross - within_x
            values = within_x / (n * (n - 1)) + within_y / (m * (m - 1)) - 2 * cross / (n * m)
            exceed += int((values >= observed - 1e-9).sum())
            done += size
        p_value = (1 + exceed) / (1 + permutations)
        exact = False
    detail = {"bandwidth": sigma, "permutations": splits if exact else permutations, "exact": exact}
    return TwoSampleResult("mmd", observed, p_value, observed, n, m, detail)


def _squared_distances(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    d2 = (x * x).sum(axis=1)[:, None] + (y * y).sum(axis=1)[None, :] - 2.0 * (x @ y.T)
    return np.maximum(d2, 0.0)


# ----------------------------------------------------------------------------- deciding


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (controls the family-wise error rate; no independence assumed).

    Sorted ascending, the i-th smallest (from 0) is multiplied by (m - i), then made non-decreasing
    and capped at 1. A test rejects at level alpha when its adjusted p-value is below alpha.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


@dataclass(frozen=True)
class Decision:
    """Whether one test calls drift, and why (or why not) in words."""

    drift: bool
    p_adjusted: float
    reason: str


def decide(
    result: TwoSampleResult,
    p_adjusted: float,
    *,
    alpha: float,
    floor: float,
    min_n: int,
    min_reference: int = MIN_REFERENCE,
) -> Decision:
    """Drift when both samples are big enough, the adjusted p-value is under alpha, and the effect clears its floor."""
    if result.n < min_n:
        return Decision(False, p_adjusted, f"too few requests ({result.n} < {min_n})")
    if result.n_reference < min_reference:
        return Decision(False, p_adjusted, f"reference too small ({result.n_reference} < {min_reference})")
    if p_adjusted >= alpha:
        return Decision(False, p_adjusted, f"p {p_adjusted:.3g} >= alpha {alpha:g}")
    if result.effect < floor:
        return Decision(
            False, p_adjusted, f"p {p_adjusted:.3g} but effect {result.effect:.3g} under its floor {floor:g}"
        )
    return Decision(True, p_adjusted, f"p {p_adjusted:.3g} < {alpha:g} and effect {result.effect:.3g} >= {floor:g}")
