"""The drift tests of one release in one window, corrected together and judged against their floors.

Three questions, each a two-sample test against what the release was shown to do:
- label: is the label mix of its answers the one it gave on the gold set? (chi-square)
- confidence: is it as sure of its answers as it was on the gold set? (KS)
- input: do the inputs look like its training inputs? (MMD^2 on embeddings, permutations)

A test runs only when the window has `drift.min_requests` values for it and the reference exists;
the p-values of the tests that ran are Holm-adjusted together, and a test calls drift only when
its adjusted p-value is under `drift.alpha` and its effect is at least its floor.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slmkit.config import DriftConfig
from slmkit.monitor.stats import Decision, TwoSampleResult, chi_square, decide, holm, ks, mmd_test

TESTS = ("label", "confidence", "input")
EFFECTS = {"label": "total variation distance", "confidence": "KS distance D", "input": "MMD^2"}


@dataclass
class DriftReport:
    results: dict[str, TwoSampleResult] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # test -> why it did not run

    @property
    def drift(self) -> bool:
        return any(d.drift for d in self.decisions.values())

    def metrics(self) -> dict[str, float | None]:
        """label_drift, label_drift_p, label_drift_effect, ... and drift: the alert rule metrics."""
        out: dict[str, float | None] = {}
        for test in TESTS:
            result, decision = self.results.get(test), self.decisions.get(test)
            out[f"{test}_drift"] = None if decision is None else float(decision.drift)
            out[f"{test}_drift_p"] = None if decision is None else decision.p_adjusted
            out[f"{test}_drift_effect"] = None if result is None else result.effect
        out["drift"] = float(self.drift) if self.decisions else None
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "drift": self.drift,
            "tests": {
                test: {
                    **self.results[test].as_dict(),
                    "p_adjusted": self.decisions[test].p_adjusted,
                    "drift": self.decisions[test].drift,
                    "reason": self.decisions[test].reason,
                    "effect_name": EFFECTS[test],
                }
                for test in self.results
            },
            "skipped": self.skipped,
        }

    def lines(self) -> list[str]:
        out = []
        for test in TESTS:
            if test in self.results:
                r, d = self.results[test], self.decisions[test]
                verdict = "DRIFT" if d.drift else "ok"
                out.append(
                    f"{test:<11}{verdict:<6} n={r.n:<5} vs {r.n_reference:<5} p={r.p_value:.3g} "
                    f"(Holm {d.p_adjusted:.3g}), {EFFECTS[test]} {r.effect:.4g}: {d.reason}"
                )
            else:
                out.append(f"{test:<11}{'-':<6} {self.skipped.get(test, 'not run')}")
        return out


def run_drift(
    cfg: DriftConfig,
    *,
    labels: Counter[str] | None,
    reference_labels: Counter[str] | None,
    confidences: Sequence[float] | None,
    reference_confidences: Sequence[float] | None,
    embeddings: np.ndarray | None,
    reference_embeddings: np.ndarray | None,
    bandwidth: float | None = None,
    seed: int = 0,
) -> DriftReport:
    """Run the tests whose samples and references exist; correct and judge them together."""
    report = DriftReport()
    floors = {"label": cfg.min_label_shift, "confidence": cfg.min_confidence_shift, "input": cfg.min_input_mmd2}
    minimum = cfg.min_requests

    def enough(test: str, n: int, reference: int | None, what: str) -> bool:
        if reference is None:
            report.skipped[test] = f"no reference ({what})"
            return False
        if n < minimum:
            report.skipped[test] = f"too few requests ({n} < {minimum})"
            return False
        return True

    n_labels = sum(labels.values()) if labels is not None else 0
    ref_labels = sum(reference_labels.values()) if reference_labels is not None else None
    if enough("label", n_labels, ref_labels, "the eval's answers with a label") and labels and reference_labels:
        report.results["label"] = chi_square(labels, reference_labels)
    n_conf = len(confidences) if confidences is not None else 0
    ref_conf = len(reference_confidences) if reference_confidences else None
    if enough("confidence", n_conf, ref_conf, "the eval's confidences") and confidences is not None:
        report.results["confidence"] = ks(confidences, reference_confidences or [])
    n_emb = len(embeddings) if embeddings is not None else 0
    ref_emb = len(reference_embeddings) if reference_embeddings is not None else None
    if enough("input", n_emb, ref_emb, "embedded training inputs") and embeddings is not None:
        assert reference_embeddings is not None
        report.results["input"] = mmd_test(
            embeddings, reference_embeddings, bandwidth=bandwidth, permutations=cfg.permutations, seed=seed
        )
    tests = list(report.results)
    adjusted = holm([report.results[t].p_value for t in tests])
    for test, p in zip(tests, adjusted, strict=True):
        report.decisions[test] = decide(report.results[test], p, alpha=cfg.alpha, floor=floors[test], min_n=minimum)
    return report
