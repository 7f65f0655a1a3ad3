"""The one call every engine answers: rendered prompts in, one Generation per prompt out.

`Engine` (the batching worker) owns retries and the guard; a Generator only decodes. Three
engines (`Backend`s, chosen by serve.engine): transformers in this process
(`TransformersGenerator`, see releases.py), and vLLM and llama.cpp as separate processes spoken
to over the OpenAI completions API (`CompletionsGenerator`, see vllm_engine.py and
llamacpp_engine.py).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Protocol

from slmkit.models.generate import Generation
from slmkit.serve.processes import EngineProcess, EngineUnavailable, RequestAbandoned

if TYPE_CHECKING:
    from slmkit.serve.releases import CheckedRelease
    from slmkit.task import Task

log = logging.getLogger("slmkit.serve")

HTTP_TIMEOUT_S = 600.0  # the gateway's own serve.timeout_s answers the client long before this


# One schema for every prompt, or one per prompt (a retrieval task: each request's own citation refs).
Schemas = dict[str, Any] | list[dict[str, Any]] | None


class Generator(Protocol):
    """Decodes for one release version; `schema`, when given, constrains the answer (engines that can).

    `stop(i)` turns True once nobody waits for prompt i any more (its request timed out or its
    client went away): the engine stops decoding it as soon as it can, not at max_new_tokens.
    """

    def generate(
        self,
        prompts: list[str],
        *,
        max_new_tokens: int,
        temperature: float,
        seed: int | None,
        schema: Schemas,
        stop: Callable[[int], bool] | None = None,
    ) -> list[Generation]: ...

    def close(self) -> None: ...


class Backend(Protocol):
    """An engine (`serve.engine`): opens a Generator per checked release; owns any engine processes."""

    name: str

    def open(self, checked: CheckedRelease) -> Generator: ...

    def health(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class TransformersGenerator:
    """In-process: base + merged adapter, batched, the system prompt's keys/values reused."""

    def __init__(self, model: Any, tokenizer: Any, prefix: Any = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.prefix = prefix  # SharedPrefix of the task's system message, computed once per load
        self.unconstrained: str | None = None  # why the schema cannot be enforced here, once found

    def generate(
        self,
        prompts: list[str],
        *,
        max_new_tokens: int,
        temperature: float,
        seed: int | None,
        schema: Schemas,
        stop: Callable[[int], bool] | None = None,
    ) -> list[Generation]:
        from slmkit.models.generate import generate

        self._check_schema(schema)
        return generate(
            self.model,
            self.tokenizer,
            prompts,
            max_new_tokens=max_new_tokens,
            batch_size=len(prompts),
            temperature=temperature,
            seed=seed,
            prefix=self.prefix,
            schema=None if self.unconstrained else schema,
            stop=stop,
            logprobs=True,  # each answer's confidence, as eval computes it (monitor)
        )

    def answer_labels(
        self,
        task: Task,
        prompts: list[str],
        *,
        max_new_tokens: int,
        schema: Schemas,
        stop: Callable[[int], bool] | None = None,
    ) -> list[Generation]:
        """Greedy answers whose label is chosen by label scoring (slmkit.models.labels), the rest
        decoded after it (under `schema` when given and enforceable), as eval answered."""
        from slmkit.models.labels import answer_with_labels

        self._check_schema(schema)
        return answer_with_labels(
            self.model,
            self.tokenizer,
            task,
            prompts,
            max_new_tokens=max_new_tokens,
            batch_size=len(prompts),
            prefix=self.prefix,
            constrained=schema is not None and not self.unconstrained,
            schema=schema,
            stop=stop,
        )

    def _check_schema(self, schema: Schemas) -> None:
        from slmkit.models.constrain import ConstraintUnsupported
        from slmkit.models.generate import schema_constraint

        if schema is not None and self.unconstrained is None:
            try:  # compiled once per schema and tokenizer, then cached
                for one in [schema] if isinstance(schema, dict) else schema:
                    schema_constraint(self.model, self.tokenizer, one)
            except ConstraintUnsupported as exc:
                self.unconstrained = str(exc) or "unsupported schema"
                log.warning("the task's schema cannot be enforced while decoding (%s); the guard alone checks it", exc)

    def close(self) -> None:
        pass


class CompletionsGenerator:
    """A release served by an engine process (vLLM, llama.cpp) through POST /v1/completions.

    The gateway renders and tokenizes the prompt itself and sends token ids, so the engine sees
    exactly the tokens the adapter was trained on. The prompts of a batch go as concurrent
    requests: the engine batches them (vLLM continuously, llama.cpp one after the other).
    `structured(schema)` is the engine's request field for constrained decoding.
    """

    def __init__(
        self,
        process: EngineProcess,
        model: str,
        tokenizer: Any,
        *,
        structured: Any,
        extra: dict[str, Any] | None = None,
        owns_process: bool = False,
    ) -> None:
        self.process = process
        self.model = model  # the name the engine knows this release by
        self.tokenizer = tokenizer
        self.structured = structured
        self.extra = extra or {}
        self.owns_process = owns_process  # stop the process with the generator (one per release)

    def generate(
        self,
        prompts: list[str],
        *,
        max_new_tokens: int,
        temperature: float,
        seed: int | None,
        schema: Schemas,
        stop: Callable[[int], bool] | None = None,
    ) -> list[Generation]:
        if not prompts:
            return []
        self.process.ensure()
        began = time.perf_counter()
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        body = {
            "model": self.model,
            "max_tokens": max_new_tokens,
            "temperature": temperature,
            "top_p": 1.0,
            **self.extra,
        }
        per_prompt = [schema] * len(prompts) if schema is None or isinstance(schema, dict) else schema
        bodies = [
            {
                **body,
                **(self.structured(one) if one is not None else {}),
                "prompt": ids,
                **({"seed": seed} if seed is not None else {}),
            }
            for ids, one in zip(encoded, per_prompt, strict=True)
        ]
        wanted = stop or (lambda i: False)
        with ThreadPoolExecutor(max_workers=min(len(bodies), 64)) as pool:
            choices = list(pool.map(lambda i: self._complete(bodies[i], lambda: wanted(i)), range(len(bodies))))
        seconds = time.perf_counter() - began
        return [
            Generation(
                text=text,
                prompt_tokens=len(ids),
                completion_tokens=completion_tokens,
                finished=finish_reason != "length",
                seconds=seconds,
            )
            for ids, (text, completion_tokens, finish_reason) in zip(encoded, choices, strict=True)
        ]

    def _complete(self, body: dict[str, Any], stopped: Callable[[], bool]) -> tuple[str, int, str]:
        try:
            status, payload = self.process.request(
                "POST", "/v1/completions", body, timeout=HTTP_TIMEOUT_S, abandon=stopped
            )
        except RequestAbandoned:
            return "", 0, "abandoned"  # the engine saw the connection close and stopped decoding it
        except OSError as exc:
            raise EngineUnavailable(
                f"the {self.process.name} process did not answer ({type(exc).__name__}: {exc})",
                hint=f"see its log {self.process.log_path}",
            ) from None
        if status != 200:
            raise EngineUnavailable(
                f"the {self.process.name} process answered {status}: {json.dumps(payload)[:500]}",
                hint=f"see its log {self.process.log_path}",
            )
        choice = payload["choices"][0]
        return choice["text"], int(payload["usage"]["completion_tokens"]), str(choice.get("finish_reason"))

    def close(self) -> None:
        if self.owns_process:
            self.process.stop()


def decoding_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as grammar builders read it best: a list of types becomes an anyOf, one branch per type.

    llama.cpp's schema-to-grammar drops keywords such as `pattern` beside `type: [string, null]`
    (so "ORD-" ids would go unconstrained); as {"anyOf": [{"type": "string", "pattern": ...},
    {"type": "null"}]} they are kept. The guard still validates against the original schema.
    """

    def visit(node: Any) -> Any:
        if isinstance(node, list):
            return [visit(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: visit(value) for key, value in node.items()}
        types = node.get("type")
        if isinstance(types, list) and "enum" not in node and "const" not in node:
            rest = {key: value for key, value in node.items() if key != "type"}
            branches = [{"type": "null"} if t == "null" else {**rest, "type": t} for t in types]
            return branches[0] if len(branches) == 1 else {"anyOf": branches}
        return node

    result: dict[str, Any] = visit(schema)
    return result
