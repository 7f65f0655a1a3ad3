"""slmkit: from a task spec and data to a fine-tuned small model, gated, released and served."""

__version__ = "0.1.0"
