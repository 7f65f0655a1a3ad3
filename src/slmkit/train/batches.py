"""Tokenized examples with loss on the answer (and, if configured, every assistant turn), and length-grouped batches."""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slmkit.models.tokens import IGNORE, Encoded
from slmkit.task import Task
from slmkit.train.turns import LossOn, loss_segments


def encode_example(
    task: Task,
    tokenizer: Any,
    input_text: str,
    output: Any,
    max_seq_len: int,
    history: Sequence[Mapping[str, str]] = (),
    loss_on: LossOn = "last_turn",
) -> Encoded:
    """Prompt and answer tokenized separately, so no token straddles the boundary.

    Loss lands on the answer and, with `loss_on="all_turns"`, on every assistant turn of the
    history too (its content and end-of-turn marker, cut through the chat template; see
    slmkit.train.turns), each tokenized on its own like the answer.

    An example longer than max_seq_len first loses its oldest earlier turns (chat examples),
    a whole turn at a time, then the end of its *input* (marked with "…"); never the system
    prompt (the instructions every answer depends on) and never the answer (what the adapter
    must learn to write).
    """
    history = list(history)
    prompt_ids, prompt_labels, answer_ids = _encode(task, tokenizer, input_text, output, history, loss_on)
    truncated = len(prompt_ids) + len(answer_ids) > max_seq_len
    while history and len(prompt_ids) + len(answer_ids) > max_seq_len:
        history = _without_oldest_turn(history)
        prompt_ids, prompt_labels, answer_ids = _encode(task, tokenizer, input_text, output, history, loss_on)
    for _ in range(4):
        overflow = len(prompt_ids) + len(answer_ids) - max_seq_len
        if overflow <= 0:
            break
        input_ids = tokenizer(input_text, add_special_tokens=False)["input_ids"]
        keep = len(input_ids) - overflow - 4  # room for the marker, and for merges at the cut
        if keep <= 0:
            break
        input_text = tokenizer.decode(input_ids[:keep]).rstrip() + " …"
        prompt_ids, prompt_labels, answer_ids = _encode(task, tokenizer, input_text, output, history, loss_on)
    if len(prompt_ids) + len(answer_ids) > max_seq_len:
        # Not even the system prompt fits: keep the answer whole and the prompt's end.
        room = max(max_seq_len - len(answer_ids), 0)
        prompt_ids = prompt_ids[len(prompt_ids) - room :]
        prompt_labels = prompt_labels[len(prompt_labels) - room :]
    ids = prompt_ids + answer_ids
    labels = prompt_labels + answer_ids
    return Encoded(ids[-max_seq_len:], labels[-max_seq_len:], truncated)


def _without_oldest_turn(history: list[Mapping[str, str]]) -> list[Mapping[str, str]]:
    """The history less its first message and any replies to it, so it still starts with a user turn."""
    rest = history[1:]
    while rest and rest[0]["role"] != "user":
        rest = rest[1:]
    return rest


def _encode(
    task: Task,
    tokenizer: Any,
    input_text: str,
    output: Any,
    history: Sequence[Mapping[str, str]],
    loss_on: LossOn,
) -> tuple[list[int], list[int], list[int]]:
    """(prompt ids, their labels, answer ids); the prompt's labels are set only on earlier assistant turns."""
    *context, answer = loss_segments(task, tokenizer, input_text, output, history, loss_on)
    prompt_ids: list[int] = []
    prompt_labels: list[int] = []
    for segment in context:
        ids = tokenizer(segment.text, add_special_tokens=False)["input_ids"]
        prompt_ids += ids
        prompt_labels += ids if segment.loss else [IGNORE] * len(ids)
    return prompt_ids, prompt_labels, tokenizer(answer.text, add_special_tokens=False)["input_ids"]


def length_grouped_batches(examples: Sequence[Encoded], batch_size: int, *, seed: int, epoch: int) -> list[list[int]]:
    """Indices in batches of similar length (little padding), in a seeded random order.

    Shuffle, cut into windows of 32 batches, sort each window by length, then shuffle the
    batches: the order stays random while padding inside a batch stays small.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(len(examples)))
    rng.shuffle(order)
    window = batch_size * 32
    batches: list[list[int]] = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: len(examples[i].input_ids))
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def random_batches(count: int, batch_size: int, *, seed: int, epoch: int) -> list[list[int]]:
    """Indices 0..count-1 shuffled (seeded, a new order each epoch) and cut into batches."""
    rng = random.Random(seed * 1_000_003 + epoch)
    order = list(range(count))
    rng.shuffle(order)
    return [order[i : i + batch_size] for i in range(0, count, batch_size)]


def epoch_batches(
    examples: Sequence[Encoded], batch_size: int, batching: str, *, seed: int, epoch: int
) -> list[list[int]]:
    """One epoch's batches as `train.batching` orders them."""
    if batching == "random":
        return random_batches(len(examples), batch_size, seed=seed, epoch=epoch)
    return length_grouped_batches(examples, batch_size, seed=seed, epoch=epoch)


def padding_share(examples: Sequence[Encoded], batches: Sequence[Sequence[int]]) -> float:
    """Share of a padded batch's positions that are padding, over all `batches`."""
    padded = sum(max(len(examples[i].input_ids) for i in b) * len(b) for b in batches if b)
    real = sum(len(examples[i].input_ids) for b in batches for i in b)
    return (padded - real) / padded if padded else 0.0


def shared_prefix_length(examples: Sequence[Encoded], minimum: int = 16) -> int:
    """Tokens every example starts with (the system prompt), stopping before any answer.

    The prefix must end at least one token before the first answer token: that token is
    predicted from the hidden state before it, which has to be computed with the rest.
    """
    if not examples:
        return 0
    first = examples[0].input_ids
    length = min(len(e.input_ids) for e in examples)
    for e in examples[1:]:
        ids = e.input_ids
        cut = 0
        while cut < length and ids[cut] == first[cut]:
            cut += 1
        length = cut
    for e in examples:
        answer_start = next((i for i, t in enumerate(e.labels) if t != IGNORE), len(e.labels))
        length = min(length, answer_start - 1)
    return length if length >= minimum else 0


def collate(
    examples: Sequence[Encoded], pad_id: int, *, share_prefix: bool = True, device: str = "cpu"
) -> dict[str, Any]:
    """Right-padded tensors on `device`; padding carries neither attention nor loss.

    With `share_prefix`, the first tokens every row of the batch starts with (the system
    prompt) go once into `prefix_ids` and the rows hold only what follows, so that prefix is
    computed once per batch instead of once per row.
    """
    import torch

    prefix_len = shared_prefix_length(examples) if share_prefix and len(examples) > 1 else 0
    rows = [(e.input_ids[prefix_len:], e.labels[prefix_len:]) for e in examples]
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    for row, (ids, labs) in enumerate(rows):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        labels[row, : len(ids)] = torch.tensor(labs)
        attention[row, : len(ids)] = 1
    batch = {"input_ids": input_ids, "labels": labels, "attention_mask": attention}
    if prefix_len:
        batch["prefix_ids"] = torch.tensor([examples[0].input_ids[:prefix_len]], dtype=torch.long)
    if device != "cpu":  # built on the CPU (row by row), sent in one copy each
        batch = {name: tensor.to(device, non_blocking=True) for name, tensor in batch.items()}
    return batch


def iterate_steps(batches: list[list[int]], grad_accum: int) -> Iterator[list[list[int]]]:
    """Group micro-batches into optimizer steps."""
    for start in range(0, len(batches) - grad_accum + 1, grad_accum):
        yield batches[start : start + grad_accum]


@dataclass(frozen=True)
class PromptCost:
    """What one training row costs in tokens, printed before training."""

    rows: int
    shared: int  # tokens every row starts with (the system prompt), computed once per batch
    own_prompt: float  # mean prompt tokens of a row after the shared start (input, template)
    answer: float  # mean answer tokens (the loss is on these)
    batch_size: int

    @property
    def per_row(self) -> float:
        return self.shared / self.batch_size + self.own_prompt + self.answer

    @property
    def epoch_tokens(self) -> float:
        return self.per_row * self.rows

    def line(self) -> str:
        return (
            f"prompt: {self.shared} tokens every row starts with (system prompt, computed once per batch of "
            f"{self.batch_size}) + {self.own_prompt:.1f} of its own + {self.answer:.1f} answer tokens = "
            f"{self.per_row:.1f} tokens computed per row; an epoch of {self.rows:,} rows is "
            f"{self.epoch_tokens:,.0f} tokens"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "shared_tokens": self.shared,
            "own_prompt_tokens": round(self.own_prompt, 2),
            "answer_tokens": round(self.answer, 2),
            "tokens_per_row": round(self.per_row, 2),
            "epoch_tokens": round(self.epoch_tokens),
        }


def prompt_cost(examples: Sequence[Encoded], shared: int, batch_size: int) -> PromptCost:
    n = max(len(examples), 1)
    answer = sum(e.answer_tokens for e in examples) / n
    own = sum(len(e.input_ids) for e in examples) / n - shared - answer
    return PromptCost(len(examples), shared, own, answer, batch_size)
