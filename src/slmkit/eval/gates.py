"""Gates: thresholds written in slmkit.yaml before training, checked against eval metrics."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from slmkit.config import Gate
from slmkit.eval.metrics import Metric


@dataclass(frozen=True)
class GateResult:
    gate: str
    metric: str
    observed: float
    ci95: tuple[float, float]
    threshold: float
    passed: bool
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ci95"] = list(self.ci95)
        return data

    def line(self) -> str:
        mark = "PASS" if self.passed else "FAIL"
        ci = f" [95% CI {self.ci95[0]:.3f}-{self.ci95[1]:.3f}]" if not math.isnan(self.ci95[0]) else ""
        why = f" ({self.reason})" if self.reason else ""
        return f"{mark}  {self.gate:<38} observed {self.observed:.3f}{ci}, needs {self.threshold:.3f}{why}"


def check_gates(
    gates: list[Gate], metrics: dict[str, Metric], base_metrics: dict[str, Metric] | None = None
) -> list[GateResult]:
    """One result per gate; a gate on a metric that was not computed fails, it is never skipped."""
    results = []
    for gate in gates:
        metric = metrics.get(gate.metric)
        base = base_metrics.get(gate.metric) if base_metrics else None
        if metric is None or math.isnan(metric.value):
            results.append(
                GateResult(
                    gate.text,
                    gate.metric,
                    float("nan"),
                    (float("nan"),) * 2,
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
