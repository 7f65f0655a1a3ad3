"""How sure the model was of an answer, from the probabilities it gave its own tokens.

`confidence` is the probability of the answer's least likely token (the end-of-turn token
included). Most tokens of a JSON answer are punctuation and field names the model is all but
certain of, so a mean over them hides the one choice it hesitated over (the label, an id);
the minimum is that choice. The mean log-probability is kept beside it for ranking long answers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def confidence_fields(token_logprobs: Sequence[float]) -> dict[str, Any]:
    """{"confidence", "min_logprob", "mean_logprob"} for one answer; None for each when it has no tokens."""
    if not token_logprobs:
        return {"confidence": None, "min_logprob": None, "mean_logprob": None}
    lowest = min(token_logprobs)
    return {
        "confidence": round(math.exp(lowest), 6),
        "min_logprob": round(lowest, 4),
        "mean_logprob": round(sum(token_logprobs) / len(token_logprobs), 4),
    }
