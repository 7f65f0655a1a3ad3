"""The behaviour spec: prompts through the real chat template, answers parsed and validated."""

from __future__ import annotations

import pytest

from slmkit.config import load_config
from slmkit.models import load_tokenizer
from slmkit.task import Task
from tests.conftest import EXAMPLE

TICKET = {"subject": "Charged twice", "body": "I was billed twice for ORD-123456, my PulseBuds Pro order."}
ANSWER = {"product": "PulseBuds Pro", "category": "billing", "order_id": "ORD-123456", "priority": "high"}


@pytest.fixture(scope="module")
def task() -> Task:
    return Task.from_config(load_config(EXAMPLE, check_files=False))


def test_input_renders_through_the_template(task):
    assert task.render_input(TICKET) == f"Subject: Charged twice\n\n{TICKET['body']}"
    assert task.render_input({"body": "no subject"}) == "Subject: \n\nno subject"


def test_system_message_states_refusal_and_output_format(task):
    text = task.system_message()
    assert text.startswith("You triage customer support tickets")
    assert '{"category": "out_of_scope", "priority": "low", "order_id": null, "product": null}' in text
    assert '"priority": "low" | "normal" | "high" | "urgent"' in text


def test_canonical_output_follows_schema_order(task):
    assert list(task.canonical(ANSWER)) == ["category", "priority", "order_id", "product"]
    assert task.format_output(ANSWER) == (
        '{"category": "billing", "priority": "high", "order_id": "ORD-123456", "product": "PulseBuds Pro"}'
    )


def test_training_texts_isolate_the_answer_in_the_real_template(task, smollm2_ref):
    tokenizer = load_tokenizer(smollm2_ref)
    prompt, completion = task.training_texts(tokenizer, task.render_input(TICKET), ANSWER)
    assert prompt.startswith("<|im_start|>system\nYou triage")
    assert prompt.endswith("<|im_start|>user\n" + task.render_input(TICKET) + "<|im_end|>\n<|im_start|>assistant\n")
    assert completion.startswith(task.format_output(ANSWER))
    assert completion.rstrip("\n").endswith("<|im_end|>")


@pytest.mark.parametrize(
    ("text", "valid", "error"),
    [
        ('{"category": "billing", "priority": "high", "order_id": "ORD-123456", "product": null}', True, None),
        ('```json\n{"category": "billing", "priority": "low", "order_id": null, "product": null}\n```', True, None),
        ('{"category": "billing", "priority": "low", "order_id": null, "product": null} Hope this helps!', True, None),
        ('{"category": "refund", "priority": "low", "order_id": null, "product": null}', False, "category: 'refund'"),
        ('{"category": "billing", "priority": "low", "order_id": "123", "product": null}', False, "order_id: '123'"),
        ('{"category": "billing", "priority": "low"}', False, "'order_id' is a required property"),
        ("The ticket is about billing.", False, "not a JSON object"),
        ('["billing"]', False, "not a JSON object"),
    ],
)
def test_parse_reads_and_validates_answers(task, text, valid, error):
    parsed = task.parse(text)
    assert parsed.valid is valid
    if error:
        assert any(error in e for e in parsed.errors), parsed.errors


def test_refusal_and_escalation(task):
    assert task.is_refusal({"product": None, "order_id": None, "priority": "low", "category": "out_of_scope"})
    assert not task.is_refusal(ANSWER)
    assert task.escalation_reason("my card was stolen", {**ANSWER, "priority": "urgent"}) == "priority is 'urgent'"
    assert task.escalation_reason("I will call my LAWYER", ANSWER) == "input mentions 'lawyer'"
    assert task.escalation_reason("thanks", ANSWER) is None


@pytest.mark.parametrize(
    "answer",
    [
        ANSWER,
        {**ANSWER, "order_id": None, "product": None},
        {**ANSWER, "order_id": "ORD-12345"},  # pattern
        {**ANSWER, "category": "refunds"},  # enum
        {**ANSWER, "extra": 1},  # additionalProperties
        {k: v for k, v in ANSWER.items() if k != "priority"},  # required
        {**ANSWER, "priority": None},  # type
        ["not", "an", "object"],
    ],
)
def test_the_compiled_check_agrees_with_jsonschema(task, answer):
    import jsonschema

    assert task._fast is not None  # the example's schema uses only keywords both drafts read alike
    expected = sorted(
        f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
        for e in jsonschema.Draft202012Validator(task.schema).iter_errors(answer)
    )
    assert sorted(task.validate(answer)) == expected


def test_a_schema_with_formats_is_checked_by_jsonschema_alone():
    from slmkit.task import _fast_validator

    assert _fast_validator({"type": "object", "properties": {"at": {"type": "string", "format": "date"}}}) is None
    assert _fast_validator({"type": "object", "properties": {"a": {"$ref": "#/$defs/x"}}}) is None
    assert _fast_validator({"type": "object", "properties": {"a": {"enum": [1, 2]}}}) is not None
