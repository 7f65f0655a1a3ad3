"""Token rows with loss labels: the shape training batches and drift measures read."""

from __future__ import annotations

from dataclasses import dataclass

IGNORE = -100  # label id that carries no loss


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE on the prompt, the token id on the answer (and on earlier assistant turns)
    truncated: bool

    @property
    def answer_tokens(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE)
