"""What blocked a retrain, by how much: one line per failed gate, read from its eval report."""

from __future__ import annotations

from typing import Any


def failed_gates(gates: list[dict[str, Any]]) -> list[str]:
    """`gate: observed X, needs Y (short by Z)` for each gate that failed; a paired gate reads its lower bound."""
    lines = []
    for gate in gates:
        if gate.get("passed"):
            continue
        observed, threshold = gate.get("observed"), gate.get("threshold")
        ci = gate.get("ci95") or [None, None]
        reason = f" ({gate['reason']})" if gate.get("reason") else ""
        if observed is None or threshold is None:
            lines.append(f"{gate['gate']}: not computed{reason}")
        elif gate.get("compared_with"):
            low = ci[0] if ci[0] is not None else observed
            lines.append(
                f"{gate['gate']}: difference {observed:+.3f} vs {gate['compared_with']}, 95% lower bound "
                f"{low:+.3f} needs >= {threshold:+.3f} (short by {threshold - low:.3f}){reason}"
            )
        else:
            short = abs(threshold - observed)
            lines.append(f"{gate['gate']}: observed {observed:.3f}, needs {threshold:.3f} (short by {short:.3f})")
    return lines
