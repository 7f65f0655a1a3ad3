"""Retraining: `slmkit retrain` (build -> train -> eval -> release, gated, keyed, locked, resumable),
its triggers (`--if-due`) and the schedule that runs it (`slmkit retrain schedule`)."""

from slmkit.retrain.run import RetrainResult, run_retrain

__all__ = ["RetrainResult", "run_retrain"]
