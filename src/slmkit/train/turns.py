"""Which text of a chat example carries loss, found through the model's own chat template.

An example renders as the system prompt, the earlier turns, the user's input and the answer.
The answer always carries loss; with `loss_on="all_turns"` every earlier assistant turn does
too, and the system prompt, user turns and role headers never do. Turn boundaries are not
hard-coded per model family: an assistant turn is the text the template adds between the
conversation rendered up to that turn with a generation prompt and the conversation rendered
with the turn. That is the turn's content plus the template's end-of-turn marker, exactly what
the model must write when it answers at that point, and exactly how the final answer is cut.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from slmkit.errors import ModelError
from slmkit.task import ChatTokenizer, Task

LossOn = Literal["last_turn", "all_turns"]


@dataclass(frozen=True)
class Segment:
    """A stretch of the rendered conversation and whether the model is trained to write it."""

    text: str
    loss: bool


def loss_segments(
    task: Task,
    tokenizer: ChatTokenizer,
    input_text: str,
    output: Any,
    history: Sequence[Mapping[str, str]] = (),
    loss_on: LossOn = "last_turn",
) -> list[Segment]:
    """The rendered example cut into consecutive segments; joined, they are the whole conversation.

    `last_turn` (or no assistant turn in the history): [prompt, answer]. `all_turns`: text
    without loss and assistant turns alternate, the answer last. Raises ModelError when the
    template renders an earlier turn differently once a later one follows (some templates drop
    or rewrite earlier assistant turns), since the turn the model sees then is not the one it
    would be trained to write.
    """
    prompt, completion = task.training_texts(tokenizer, input_text, output, history)
    if loss_on == "last_turn" or not any(turn["role"] == "assistant" for turn in history):
        return [Segment(prompt, False), Segment(completion, True)]
    messages = task.messages(input_text, output, history)
    # Renders that must each extend the one before: up to an assistant turn (ending in the
    # generation prompt), then with that turn; the final answer's pair comes from training_texts.
    renders: list[str] = []
    for index, message in enumerate(messages[:-1]):
        if message["role"] == "assistant":
            renders.append(_render(tokenizer, messages[:index], add_generation_prompt=True))
            renders.append(_render(tokenizer, messages[: index + 1], add_generation_prompt=False))
    renders += [prompt, prompt + completion]
    segments: list[Segment] = []
    done = ""
    for position, text in enumerate(renders):
        if not text.startswith(done):
            turn = position // 2 + 1  # assistant turns counted from 1, the final answer last
            changed = (
                f"the conversation before assistant turn {turn} differently with and without that turn"
                if position % 2
                else f"assistant turn {turn - 1} (or an earlier turn) differently once a later turn follows"
            )
            raise ModelError(
                f"the chat template renders {changed}, so the tokens of each assistant turn cannot be isolated",
                hint="set train.loss_on: last_turn (loss on the final answer only), or use a model whose chat "
                "template renders every earlier turn the same way whatever follows it",
            )
        segments.append(Segment(text[len(done) :], loss=position % 2 == 1))
        done = text
    return segments


def _render(tokenizer: ChatTokenizer, messages: list[dict[str, str]], *, add_generation_prompt: bool) -> str:
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt))
