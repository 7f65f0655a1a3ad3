"""A deterministic template teacher, for tests only: it is not a model.

It answers `slmkit synth`'s requests by rewriting the seed shown in the prompt with fixed
templates, so a test knows exactly which rows come back. `script(request)` may return another
reply text (or a Reply) for chosen requests, to plant the failures the checks must catch.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from slmkit.data.synth_teacher import Reply, TeacherRequest

Script = Callable[[TeacherRequest], "str | Reply | None"]


class TemplateTeacher:
    model = "template-teacher"
    endpoint = "template:"

    def __init__(self, script: Script | None = None, fields: tuple[str, ...] = ("subject", "body")) -> None:
        self.script = script
        self.fields = fields
        self.calls: list[TeacherRequest] = []

    def answer(self, request: TeacherRequest) -> Reply:
        self.calls.append(request)
        planted = self.script(request) if self.script is not None else None
        if isinstance(planted, Reply):
            return planted
        text = planted if planted is not None else self.template(request)
        return Reply(request.key, text, prompt_tokens=len(request.messages[-1]["content"]) // 4,
                     completion_tokens=len(text) // 4, seconds=0.001, finish_reason="stop")  # fmt: skip

    def template(self, request: TeacherRequest) -> str:
        kind, sample = request.meta["kind"], request.meta["sample"]
        user = request.messages[-1]["content"]
        keep = " ".join(
            json.loads(v) for v in re.findall(r'"(?:[^"\\]|\\.)*"', _between(user, "exactly as written: ", ".\n\n"))
        )
        if kind == "paraphrase":  # the seed's words backwards, then the values it must keep
            seed = self._fields(_between(user, "Request:\n", "\n\nReply"))
            return self._reply(seed, lambda words: words[::-1], f"(take {sample}) {keep}")
        if kind == "same_label":  # every second word, then the values
            seed = self._fields(_between(user, "with that answer:\n", "\n\nReply"))
            return self._reply(seed, lambda words: words[::2], f"(case {sample}) {keep}")
        if kind == "near_miss":  # the partner's opening, the seed's words rotated, then the values
            partner = self._fields(_between(user, "Second example:\n", "\n\nReply"))
            seed = self._fields(_between(user, "First example:\n", "\n\nSecond"))
            opening = " ".join(" ".join(partner.values()).split()[:4])
            return self._reply(seed, lambda words: [*opening.split(), *words[len(words) // 2 :]], keep)
        if kind == "out_of_scope":
            n = int(request.meta["ident"])
            topics = ["pizza places near the station", "tomorrow's weather", "a poem about cats", "chess openings"]
            body = f"Could you recommend {topics[n % len(topics)]}? Asking for the {n + 1}th time this week."
            return json.dumps(dict.fromkeys(self.fields, "") | {self.fields[-1]: body})
        if kind == "judge":
            return json.dumps({"score": 5, "reason": "a fine example"})
        if kind == "document":
            passage = _between(user, ":\n", "\n\nThe answer")
            sentence = re.split(r"(?<=[.!?])\s", passage.strip())[0]
            return json.dumps({"input": {self.fields[-1]: f"What does the guide say? {sample}"},
                               "output": {"answer": sentence, "topic": "policy"}})  # fmt: skip
        raise AssertionError(f"the template teacher has no template for {kind}")

    def _fields(self, shown: str) -> dict[str, str]:
        if len(self.fields) == 1:
            return {self.fields[0]: shown}
        value: dict[str, Any] = json.loads(shown)
        return {name: str(value.get(name, "")) for name in self.fields}

    def _reply(self, seed: dict[str, str], change: Callable[[list[str]], list[str]], tail: str) -> str:
        last = self.fields[-1]
        words = change(seed[last].split())
        return json.dumps({**seed, last: f"{' '.join(words)} {tail}".strip()}, ensure_ascii=False)


def _between(text: str, start: str, end: str) -> str:
    """The text between two markers; empty when the first is absent."""
    if start not in text:
        return ""
    at = text.index(start) + len(start)
    return text[at : text.index(end, at)]
