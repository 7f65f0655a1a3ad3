"""How sure the model was of an answer: one definition, for eval, review and serving.

With label scoring (slmkit.models.labels) the answer's `confidence` is its label's probability
among the allowed labels: every label was scored whole, so this is the model's own odds for the
choice the task is about.

Otherwise it is the probability of the answer's least likely token (the end-of-turn token
included). Most tokens of a JSON answer are punctuation and field names the model is all but
certain of, so a mean over them hides the one choice it hesitated over (the label, an id);
the minimum is that choice. The mean log-probability is kept beside it for ranking long answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def confidence_fields(token_logprobs: Sequence[float], label: Any = None) -> dict[str, Any]:
    """{"confidence", "min_logprob", "mean_logprob"} for one answer; None for each when it has no tokens.

    `label` is the answer's LabelChoice when label scoring chose its label: its probability is
    the confidence, and its nearest rivals are kept as `label_alternatives`.
    """
    fields: dict[str, Any] = {"confidence": None, "min_logprob": None, "mean_logprob": None}
    if token_logprobs:
        lowest = min(token_logprobs)
        fields = {
            "confidence": round(math.exp(lowest), 6),
            "min_logprob": round(lowest, 4),
            "mean_logprob": round(sum(token_logprobs) / len(token_logprobs), 4),
        }
    if label is not None:
        fields["confidence"] = round(label.probability, 6)
        fields["label_alternatives"] = [[value, probability] for value, probability in label.alternatives]
    return fields
