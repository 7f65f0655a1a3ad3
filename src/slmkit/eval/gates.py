"""Gates: thresholds written in slmkit.yaml before training, checked against eval metrics."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from slmkit.config import Gate
from slmkit.eval.compare import Regression
from slmkit.eval.metrics import Metric

NAN = float("nan")


@dataclass(frozen=True)
class GateResult:
    gate: str
    metric: str
    observed: float  # the metric; for a no_regression_vs gate, candidate - release
    ci95: tuple[float, float]
    threshold: float
    passed: bool
    reason: str = ""
    compared_with: str | None = None  # no_regression_vs: the release compared against (None: there was none)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ci95"] = list(self.ci95)
        return data

    def line(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        ci = f" [95% CI {self.ci95[0]:.3f}-{self.ci95[1]:.3f}]" if not math.isnan(self.ci95[0]) else ""
        why = f" ({self.reason})" if self.reason else ""
        if math.isnan(self.observed):
            against = f" vs {self.compared_with}" if self.compared_with else ""
            return f"{mark}  {self.gate:<38}{against}{why}"
        if self.compared_with is not None:
            ci = f" [95% CI {self.ci95[0]:+.3f} to {self.ci95[1]:+.3f}]" if not math.isnan(self.ci95[0]) else ""
            return (
                f"{mark}  {self.gate:<38} difference {self.observed:+.3f}{ci} vs {self.compared_with}, "
                f"lower bound needs >= {self.threshold:+.3f}{why}"
            )
        return f"{mark}  {self.gate:<38} observed {self.observed:.3f}{ci}, needs {self.threshold:.3f}{why}"


def check_gates(
    gates: list[Gate],
    metrics: dict[str, Metric],
    base_metrics: dict[str, Metric] | None = None,
    regressions: Mapping[str, Regression] | None = None,
) -> list[GateResult]:
    """One result per gate; a gate on a metric that was not computed fails, it is never skipped.

    A `no_regression_vs ALIAS` gate reads `regressions[ALIAS]`: it passes when the lower bound of
    the 95% interval of candidate - release is at least -margin, or when no release is behind
    the alias yet (nothing to regress from).
    """
    results = []
    for gate in gates:
        if gate.vs_alias is not None:
            results.append(_no_regression(gate, (regressions or {}).get(gate.vs_alias)))
            continue
        metric = metrics.get(gate.metric)
        base = base_metrics.get(gate.metric) if base_metrics else None
        if metric is None or math.isnan(metric.value):
            results.append(
                GateResult(
                    gate.text,
                    gate.metric,
                    NAN,
                    (NAN, NAN),
                    gate.value,
                    False,
                    "metric not computed for this task or gold set",
                )
            )
            continue
        if gate.relative_to_base and (base is None or math.isnan(base.value)):
            results.append(
                GateResult(
                    gate.text,
                    gate.metric,
                    metric.value,
                    (metric.low, metric.high),
                    gate.value,
                    False,
                    "needs the base model's score; set eval.compare_base: true",
                )
            )
            continue
        threshold = gate.threshold(base.value if base else None)
        results.append(
            GateResult(
                gate.text,
                gate.metric,
                metric.value,
                (metric.low, metric.high),
                threshold,
                gate.check(metric.value, base.value if base else None),
            )
        )
    return results


def _no_regression(gate: Gate, regression: Regression | None) -> GateResult:
    def result(observed: float, ci: tuple[float, float], passed: bool, reason: str, against: str | None) -> GateResult:
        return GateResult(gate.text, gate.metric, observed, ci, 0.0 - gate.margin, passed, reason, against)

    if regression is None:
        return result(NAN, (NAN, NAN), False, f"slmkit bug: no comparison with '{gate.vs_alias}' was made", None)
    if regression.against is None:
        return result(NAN, (NAN, NAN), True, f"no release behind '{gate.vs_alias}' yet: nothing to regress from", None)
    if regression.error is not None:
        return result(NAN, (NAN, NAN), False, regression.error, regression.against)
    comparison = regression.comparisons.get(gate.metric)
    if comparison is None or math.isnan(comparison.difference) or math.isnan(comparison.low):
        return result(NAN, (NAN, NAN), False, "metric not computed for this task or gold set", regression.against)
    reason = f"{comparison.release:.3f} -> {comparison.candidate:.3f} on {regression.items} paired items"
    if comparison.p_value is not None:
        reason += f", McNemar p={comparison.p_value:.3f}, {len(comparison.right_to_wrong)} right->wrong"
    return result(
        comparison.difference,
        (comparison.low, comparison.high),
        comparison.low >= 0.0 - gate.margin,
        reason,
        regression.against,
    )
