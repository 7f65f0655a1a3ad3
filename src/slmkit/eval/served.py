"""Evaluation through a serving endpoint: the gold inputs sent to an OpenAI-compatible server
(`slmkit serve` on any engine: transformers, vLLM, llama.cpp), scored like the offline answers.

`slmkit eval --via URL` adds these as the `served` side of the report, with how often the
served answer equals the offline adapter's (parsed JSON, key order and spacing aside). When the
served release holds the adapter being evaluated, that agreement is the proof that offline and
served numbers describe the same model; when it does not, the side is production's numbers on
this gold set, measured through production's own path.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from slmkit.errors import StageError


@dataclass(frozen=True)
class ServedAnswers:
    texts: list[str]
    answered_by: list[str | None]  # the release that answered each (the server's `model` field)
    errors: list[str | None]  # why an item got no answer (kept as an empty, invalid answer)


def served_answers(
    url: str,
    model: str,
    items: list[tuple[str, list[dict[str, str]]]],
    *,
    api_key: str | None = None,
    concurrency: int = 8,
    timeout_s: float = 600.0,
) -> ServedAnswers:
    """Each (input, earlier turns) sent as one chat completion; answers in input order."""
    import openai

    client = openai.OpenAI(
        base_url=url, api_key=api_key or os.environ.get("SLMKIT_API_KEY") or "unused", max_retries=2, timeout=timeout_s
    )

    def ask(item: tuple[str, list[dict[str, str]]]) -> tuple[str, str | None, str | None]:
        text, history = item
        messages: Any = [*history, {"role": "user", "content": text}]
        try:
            reply = client.chat.completions.create(model=model, messages=messages, temperature=0)
        except openai.APIConnectionError as exc:
            raise StageError(
                f"cannot reach the server at {url}: {exc}", hint="start it with `slmkit serve`, or check --via"
            ) from None
        except openai.APIStatusError as exc:
            return "", None, f"HTTP {exc.status_code}: {exc.message}"
        return reply.choices[0].message.content or "", reply.model, None

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(ask, items))
    return ServedAnswers([r[0] for r in results], [r[1] for r in results], [r[2] for r in results])
