"""Constrained decoding: the tiny random model writes garbage freely, and only schema-valid JSON under the schema."""

from __future__ import annotations

import json

import openai
import pytest

from slmkit.config import load_config
from slmkit.models import load_model, load_tokenizer, resolve_base_model
from slmkit.models.constrain import ConstraintUnsupported
from slmkit.models.generate import generate, schema_constraint
from slmkit.serve import start_server
from slmkit.task import Task
from tests.conftest import write_project
from tests.serve.conftest import make_project, release_adapter

TICKETS = ["My order ORD-123456 never arrived", "refund my headphones please", "hello?", "The app crashes on login"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_model_dir):
    task = Task.from_config(load_config(write_project(tmp_path_factory.mktemp("c"), tiny_model_dir, rows=20)))
    base = resolve_base_model(str(tiny_model_dir))
    return task, load_tokenizer(base), load_model(base)


def test_free_decoding_is_garbage_and_constrained_decoding_is_valid_json(tiny) -> None:
    task, tokenizer, model = tiny
    prompts = [task.prompt_text(tokenizer, text) for text in TICKETS]
    free = generate(model, tokenizer, prompts, max_new_tokens=60)
    bound = generate(model, tokenizer, prompts, max_new_tokens=60, schema=task.schema)
    assert not any(task.parse(g.text).valid for g in free), [g.text for g in free]
    for generation in bound:
        output = json.loads(generation.text)  # whole JSON, not cut off: the grammar ends it
        assert generation.finished and task.validate(output) == [], generation.text
        assert generation.text == task.format_output(output), "written as training targets are"
        assert output[task.cfg.label_field] in task.labels


def test_a_schema_the_decoder_cannot_enforce_is_refused_by_name(tiny) -> None:
    _, tokenizer, model = tiny
    with pytest.raises(ConstraintUnsupported, match="Pointer '/nowhere' does not exist"):
        schema_constraint(model, tokenizer, {"type": "object", "properties": {"x": {"$ref": "#/nowhere"}}})


def test_the_server_decodes_under_the_schema_and_says_so(tmp_path, tiny_model_dir, adapters) -> None:
    config = make_project(tmp_path / "p", tiny_model_dir, **{"serve.constrained": True, "serve.max_new_tokens": 80})
    release_adapter(config, adapters[0], tiny_model_dir)
    task = Task.from_config(config)
    with start_server(config) as handle:
        client = openai.OpenAI(base_url=handle.url, api_key="x", max_retries=0)
        for text in TICKETS:
            answer = client.chat.completions.create(
                model="support-tickets", messages=[{"role": "user", "content": text}]
            )
            extras = answer.model_extra["slmkit"]
            assert extras["constrained"] is True
            assert extras["valid"] is True and extras["guard"]["attempts"] == 1, extras  # right the first time
            assert task.validate(json.loads(answer.choices[0].message.content)) == []
