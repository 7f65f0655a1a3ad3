"""The guard and the input reader on real strings, against the example task's schema."""

from __future__ import annotations

import json

import pytest

from slmkit.config import load_config
from slmkit.serve.guard import judge
from slmkit.serve.protocol import APIError, ChatMessage
from slmkit.serve.service import user_input
from slmkit.task import Task
from tests.conftest import EXAMPLE


@pytest.fixture(scope="module")
def task() -> Task:
    return Task.from_config(load_config(EXAMPLE, check_files=False))


@pytest.fixture(scope="module")
def valid(task: Task) -> dict:
    """A valid answer, whatever product list the example carries today."""
    product_enum = task.schema["properties"]["product"].get("enum", ["headphones"])
    answer = {"category": "shipping", "priority": "high", "order_id": "ORD-123456", "product": product_enum[0]}
    assert task.validate(answer) == []
    return answer


def test_valid_first_answer_is_returned_canonically(task: Task, valid: dict) -> None:
    reordered = json.dumps(dict(reversed(valid.items())))
    result = judge(task, [reordered])
    assert result.valid_first and not result.replaced and not result.refused
    assert result.chosen == 0 and result.attempts == 1 and result.reason is None
    assert result.content == task.format_output(valid) != reordered  # schema key order, one line


def test_fenced_json_with_chatter_is_accepted_and_cleaned(task: Task, valid: dict) -> None:
    result = judge(task, ["```json\n" + json.dumps(valid, indent=2) + "\n```"])
    assert result.valid_first
    assert result.content == task.format_output(valid)
    assert "```" not in result.content


def test_invalid_enum_is_replaced_by_the_first_valid_retry(task: Task, valid: dict) -> None:
    bad = json.dumps({**valid, "category": "complaints"})
    result = judge(task, [bad, "no idea", json.dumps(valid)])
    assert not result.valid_first and not result.replaced
    assert result.chosen == 2 and result.attempts == 3
    assert result.output == valid
    assert "complaints" in (result.reason or "")  # why the first answer was rejected


def test_no_valid_answer_falls_back_to_the_refusal(task: Task) -> None:
    result = judge(task, ["Sure! The category is shipping.", '{"category": "shipping"'])
    assert result.replaced and result.refused and not result.valid_first
    assert result.chosen is None and result.attempts == 2
    assert result.output == task.refusal_output
    assert result.content == task.format_output(task.refusal_output)
    assert result.reason == "not a JSON object"
    assert task.parse(result.content).valid


def test_model_written_refusal_counts_as_refused_not_replaced(task: Task) -> None:
    result = judge(task, [json.dumps(task.refusal_output)])
    assert result.refused and not result.replaced and result.valid_first


def test_without_a_refusal_rule_nothing_is_returned(task: Task) -> None:
    strict = Task(task.cfg.model_copy(update={"refusal": None}), task.schema)
    result = judge(strict, ["not json at all"])
    assert result.output is None and result.content is None
    assert not result.replaced and not result.refused


def test_record_with_input_fields_renders_through_the_template(task: Task) -> None:
    record = {"subject": "Where is my order?", "body": "It has been two weeks."}
    text = user_input(task, [ChatMessage(role="user", content=json.dumps(record))])
    assert text == "Subject: Where is my order?\n\nIt has been two weeks."


def test_other_text_is_the_input_and_the_last_user_message_wins(task: Task) -> None:
    messages = [
        ChatMessage(role="system", content="Answer in French."),
        ChatMessage(role="user", content="first"),
        ChatMessage(role="assistant", content="{}"),
        ChatMessage(role="user", content=[{"type": "text", "text": ' {"unrelated": 1} '}]),
    ]
    assert user_input(task, messages) == '{"unrelated": 1}'
    assert user_input(task, [ChatMessage(role="user", content="{not json")]) == "{not json"


def test_no_user_message_is_a_clear_400(task: Task) -> None:
    with pytest.raises(APIError) as caught:
        user_input(task, [ChatMessage(role="system", content="hello")])
    assert caught.value.status == 400 and "user" in caught.value.message
