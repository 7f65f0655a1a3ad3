"""gemma3-270m, the second built-in base: joined from its chunk packages, converted, prompted in Gemma's turn format."""

from __future__ import annotations

import pytest

from slmkit.config import TaskConfig
from slmkit.models.labels import LabelField, end_of_turn_token
from slmkit.task import Task


@pytest.mark.slow
def test_gemma_resolves_with_a_turn_format_and_stops_at_its_end_of_turn():
    from slmkit.models import load_tokenizer, resolve_base_model
    from slmkit.models.resolve import BUILTIN_MODELS

    assert "Gemma Terms of Use" in BUILTIN_MODELS["gemma3-270m"].license
    ref = resolve_base_model("gemma3-270m")
    tokenizer = load_tokenizer(ref)
    cfg = TaskConfig(name="t", input_fields=["text"], system_prompt="Classify.", label_field="intent")
    task = Task(cfg, {"type": "object", "properties": {"intent": {"enum": ["a", "b"]}}, "required": ["intent"]})
    prompt, completion = task.training_texts(tokenizer, "hello there", {"intent": "a"})
    assert prompt.startswith("<bos><start_of_turn>user\nClassify.") and prompt.endswith("<start_of_turn>model\n")
    assert completion == '{"intent": "a"}<end_of_turn>\n'
    end = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert end_of_turn_token(task, tokenizer, LabelField.of(task)) == end
    import json

    assert end in json.loads((ref.path / "generation_config.json").read_text())["eos_token_id"]
