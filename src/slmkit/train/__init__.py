"""Training: one SFT recipe (LoRA / DoRA via PEFT), answer-only loss, validation, best adapter."""

from slmkit.train.recipe import TrainResult, run_train

__all__ = ["TrainResult", "run_train"]
