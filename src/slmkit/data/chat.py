"""Chat logs (`format: chat`): one JSON object per line holding a list of messages -> examples.

This module owns what is specific to the messages format: which roles a log may hold, how a
message's content becomes text, which assistant turns become answers (`chat.turns`), the history
before each, and the provenance and ids of the examples one line gives. It also checks that a
chat source can be read at all (one task input field, no `columns`).

Reading the file (bytes, lines, JSON, hashing, counting) stays in `ingest`, which shares it with
plain JSONL, calls `chat_examples` for every object and builds the rows. This module touches no
file and imports nothing from `ingest`, so the two have no import cycle.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from slmkit.config import SourceConfig
from slmkit.data.normalize import json_type
from slmkit.errors import DataError

CHAT_ROLES = ("system", "user", "assistant")


class ChatLineError(ValueError):
    """Why one chat line gives no example: anything wrong with a line rejects the whole line."""


@dataclass(frozen=True)
class ChatExample:
    """One answered assistant turn of a line.

    `anchor` is added to the line's provenance: "" for `turns: last`, "#turn<n>" for `turns: all`.
    `history` is the conversation before the user message it answers, oldest first.
    """

    anchor: str
    record: dict[str, Any]
    history: tuple[dict[str, str], ...]


def check_chat_source(source: SourceConfig, input_fields: list[str]) -> None:
    """Refuse a chat source the task cannot take: chat gives one input, and `columns` has nothing to map."""
    if len(input_fields) != 1:
        raise DataError(
            f"{source.path}: format: chat gives one input per example (the user's message), but "
            f"task.input_fields has {len(input_fields)}: {', '.join(input_fields)}",
            hint="give the task a single input field (e.g. input_fields: [message]) for chat logs, or "
            "export the data as JSONL / CSV with one column per input field",
        )
    if source.columns:
        raise DataError(
            f"{source.path}: columns does not apply to format: chat (the input is the user's message)",
            hint="remove `columns` from this source; set chat.messages_field if the messages list has another name",
        )


def chat_line_id(value: dict[str, Any], id_field: str | None) -> str | None:
    """The line's id as text (a number or object as its JSON), or None without an id field or value."""
    line_id = value.get(id_field) if id_field else None
    return line_id if line_id is None or isinstance(line_id, str) else json.dumps(line_id)


def chat_examples(value: dict[str, Any], source: SourceConfig, input_field: str) -> list[ChatExample]:
    """The examples of one chat line: its last assistant turn, or every one (`turns: all`).

    System messages are dropped (the task's own system prompt is used in training and serving).
    Each answered assistant turn must directly follow a user turn; the conversation before that
    user turn is the example's history. Raises ChatLineError with the first problem found.
    """
    field = source.chat.messages_field
    messages = value.get(field)
    if field not in value:
        raise ChatLineError(
            f"no '{field}' field (data.sources[].chat.messages_field); each line holds a list of messages"
        )
    if not isinstance(messages, list):
        raise ChatLineError(f"'{field}' is a JSON {json_type(messages)}, not a list of messages")
    turns: list[tuple[int, str, str]] = []  # (message number, role, text), system messages left out
    for n, message in enumerate(messages, start=1):
        problem = None
        if not isinstance(message, dict):
            problem = f"message {n} is a JSON {json_type(message)}, not an object"
        elif "role" not in message:
            problem = f"message {n} has no role"
        elif message.get("content") is None:
            problem = f"message {n} ({message['role']}) has no content"
        if problem:
            raise ChatLineError(f"{problem}; every message needs a role and a content")
        role, content = message["role"], _content_text(message["content"])
        if role not in CHAT_ROLES:
            raise ChatLineError(
                f"message {n} has role {role!r}; chat logs may hold system, user and assistant messages"
            )
        if content is None:
            raise ChatLineError(f"message {n} ({role}) has content that is not text; give it a string")
        if role != "system":
            turns.append((n, role, content))
    answers = [k for k, (_, role, _) in enumerate(turns) if role == "assistant"]
    if not answers:
        raise ChatLineError("no assistant message, so there is no answer to learn")
    targets = answers if source.chat.turns == "all" else answers[-1:]
    for k in targets:
        if k == 0 or turns[k - 1][1] != "user":
            before = "starts the conversation" if k == 0 else f"follows message {turns[k - 1][0]} (assistant)"
            raise ChatLineError(f"message {turns[k][0]} (assistant) {before}; each answer must follow a user message")
    # The line's other fields (a conversation or customer id) ride along, for split.group_by.
    context = {key: item for key, item in value.items() if key != field}
    text_id = chat_line_id(value, source.id_field)
    examples = []
    for turn, k in enumerate(targets, start=1):
        record = {**context, input_field: turns[k - 1][2], source.output_field: turns[k][2]}
        anchor = "" if source.chat.turns == "last" else f"#turn{turn}"
        if source.id_field and text_id is not None:
            record[source.id_field] = text_id + anchor
        history = tuple({"role": role, "content": text} for _, role, text in turns[: k - 1])
        examples.append(ChatExample(anchor, record, history))
    return examples


def _content_text(content: Any) -> str | None:
    """A message's text: a string, or the text parts of an OpenAI content list; None when neither."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(part, dict) for part in content):
        texts = [part.get("text") for part in content if part.get("type") == "text"]
        if texts and all(isinstance(text, str) for text in texts):
            return "".join(str(text) for text in texts)
    return None
