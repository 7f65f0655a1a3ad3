"""Label scoring: every allowed label scored whole in one packed pass, exactly as one forward per label would."""

from __future__ import annotations

import json

import pytest

from slmkit.config import TaskConfig
from slmkit.models.generate import SharedPrefix, common_prefix, generate
from slmkit.models.labels import LabelField, answer_with_labels, choose_labels, score_candidates
from slmkit.task import Task

LABELS = [
    "alarm_query",
    "alarm_remove",
    "alarm_set",
    "audio_volume_up",
    "calendar_set",
    "weather_query",
    "iot_hue_lightoff",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from slmkit.models import load_model, load_tokenizer, resolve_base_model

    ref = resolve_base_model(str(tiny_model_dir))
    return load_model(ref), load_tokenizer(ref)


def task(properties: dict, label: str = "intent") -> Task:
    schema = {"type": "object", "additionalProperties": False, "required": list(properties), "properties": properties}
    cfg = TaskConfig(
        name="t", input_fields=["text"], system_prompt="Classify the home-assistant request.", label_field=label
    )
    return Task(cfg, schema)


def prompts(t: Task, tokenizer, texts=("wake me up at 7", "is it going to rain", "lights off in the kitchen please")):
    return [t.prompt_text(tokenizer, text) for text in texts]


def flat(rows):
    return [value for row in rows for value in row]


def naive(model, contexts, candidates):
    """One full forward per (context, candidate): the reference the packed pass must equal."""
    import torch

    out = []
    with torch.inference_mode():
        for context, tails in zip(contexts, candidates, strict=True):
            row = []
            for tail in tails:
                logits = model(torch.tensor([list(context) + list(tail)])).logits.float()
                lp = torch.log_softmax(logits, -1)[0]
                row.append(sum(lp[len(context) - 1 + k, t].item() for k, t in enumerate(tail)))
            out.append(row)
    return out


def test_the_packed_pass_scores_each_label_as_its_own_forward_would(tiny):
    model, tokenizer = tiny
    t = task({"intent": {"enum": LABELS}})
    contexts = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts(t, tokenizer)]
    contexts[1] = contexts[1] + tokenizer(" and tomorrow?", add_special_tokens=False)["input_ids"]  # unequal lengths
    tails = [
        tokenizer(json.dumps(v) + "}", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for v in LABELS
    ]
    reference = naive(model, contexts, [tails] * 3)
    packed, seconds = score_candidates(model, contexts, [tails] * 3, pad_id=tokenizer.pad_token_id, batch_size=2)
    assert flat(packed) == pytest.approx(flat(reference), abs=1e-4) and len(seconds) == 3
    # With the system prompt's keys/values from the shared prefix cache: the same scores.
    prefix = SharedPrefix.compute(model, common_prefix(contexts))
    cached, _ = score_candidates(model, contexts, [tails] * 3, pad_id=tokenizer.pad_token_id, prefix=prefix)
    assert flat(cached) == pytest.approx(flat(reference), abs=1e-4)


def test_choices_are_the_argmax_with_a_softmax_over_the_labels(tiny):
    model, tokenizer = tiny
    t = task({"intent": {"enum": LABELS}})
    field = LabelField.of(t)
    assert field is not None and field.position == 0 and field.ends_answer
    choices, _ = choose_labels(model, tokenizer, field, prompts(t, tokenizer), [field.opening()] * 3)
    for choice in choices:
        assert choice.value in LABELS and choice.alternatives[0][0] == choice.value
        assert 0 < choice.probability <= 1 and choice.probability == pytest.approx(choice.alternatives[0][1], abs=1e-6)
        assert [p for _, p in choice.alternatives] == sorted((p for _, p in choice.alternatives), reverse=True)


def test_a_label_only_answer_is_the_training_target_of_the_chosen_label(tiny):
    model, tokenizer = tiny
    t = task({"intent": {"enum": LABELS}})
    answers = answer_with_labels(model, tokenizer, t, prompts(t, tokenizer), max_new_tokens=16)
    for answer in answers:
        assert answer.text == t.format_output({"intent": answer.label.value}) and t.parse(answer.text).valid
        assert answer.finished and answer.completion_tokens > 1


def test_other_fields_are_decoded_under_the_schema_after_the_chosen_label(tiny):
    model, tokenizer = tiny
    t = task(
        {"intent": {"enum": LABELS}, "room": {"enum": ["kitchen", "bedroom", None]}, "urgent": {"type": "boolean"}}
    )
    answers = answer_with_labels(model, tokenizer, t, prompts(t, tokenizer), max_new_tokens=24)
    for answer in answers:
        parsed = t.parse(answer.text)
        assert parsed.valid, answer.text
        assert parsed.value["intent"] == answer.label.value and list(parsed.value) == ["intent", "room", "urgent"]


def test_a_label_after_other_fields_is_scored_given_the_decoded_start(tiny):
    model, tokenizer = tiny
    t = task({"room": {"enum": ["kitchen", "bedroom"]}, "intent": {"enum": LABELS}})
    ps = prompts(t, tokenizer)
    answers = answer_with_labels(model, tokenizer, t, ps, max_new_tokens=24)
    decoded = generate(model, tokenizer, ps, max_new_tokens=24, schema=t.schema)
    field = LabelField.of(t)
    befores = [field.before_in(g.text) for g in decoded]
    expected, _ = choose_labels(model, tokenizer, field, ps, befores)
    for answer, choice, before in zip(answers, expected, befores, strict=True):
        assert answer.label.value == choice.value
        assert answer.text == before + json.dumps(choice.value) + "}" and t.parse(answer.text).valid


def test_a_task_without_a_label_enum_has_no_label_field():
    assert LabelField.of(task({"intent": {"type": "string"}})) is None
