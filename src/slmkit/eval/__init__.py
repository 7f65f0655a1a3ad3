"""Evaluation: task metrics on the locked gold set, base vs adapter, gates set before training."""

from slmkit.eval.gates import GateResult, check_gates
from slmkit.eval.run import EvalResult, run_eval

__all__ = ["EvalResult", "GateResult", "check_gates", "run_eval"]
