"""Multi-turn chat: exactly which tokens carry loss with `train.loss_on`, for two chat templates.

The printed spans are the texts the adapter is trained to write; everything else (system
prompt, user turns, role headers) only conditions it.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from slmkit.config import load_config
from slmkit.errors import ModelError
from slmkit.models import load_model, load_tokenizer, resolve_base_model
from slmkit.task import Task
from slmkit.train.batches import IGNORE, Encoded, collate, encode_example, shared_prefix_length
from slmkit.train.loss import answer_loss
from tests.conftest import EXAMPLE

ANSWER = {"category": "shipping", "priority": "normal", "order_id": "ORD-482913", "product": None}
ANSWER_TEXT = '{"category": "shipping", "priority": "normal", "order_id": "ORD-482913", "product": null}'
HISTORY = (
    {"role": "user", "content": "Where is my order ORD-482913?"},
    {"role": "assistant", "content": "It left our warehouse on Monday."},
)
FOLLOW_UP = "It has still not arrived, please check."

# A Llama-3-style template: header tokens around the role, the turn closed by <|eot_id|>, no newline after it.
LLAMA3_STYLE = (
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
# Like templates of reasoning models: an assistant turn that is no longer the last one loses its reasoning.
REWRITES_EARLIER_TURNS = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' and not loop.last %}{{ message['content'].split('</think>')[-1] }}"
    "{% else %}{{ message['content'] }}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="module")
def task() -> Task:
    return Task.from_config(load_config(EXAMPLE, check_files=False))


@pytest.fixture(scope="module")
def smollm2_tokenizer(smollm2_ref):
    return load_tokenizer(smollm2_ref)


@pytest.fixture(scope="module")
def llama3_style_tokenizer(smollm2_ref):
    """SmolLM2's tokenizer given another family's chat template, its markers as special tokens."""
    tokenizer = load_tokenizer(smollm2_ref)
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]}
    )
    tokenizer.chat_template = LLAMA3_STYLE
    return tokenizer


def loss_spans(tokenizer, encoded: Encoded, label: str) -> list[str]:
    """Each run of consecutive tokens with a label, decoded; printed token by token for the reader."""
    assert len(encoded.labels) == len(encoded.input_ids)
    spans: list[list[int]] = []
    previous = IGNORE
    for token, target in zip(encoded.input_ids, encoded.labels, strict=True):
        if target != IGNORE:
            assert target == token  # a label is the token itself (the shift happens in the loss)
            if previous == IGNORE:
                spans.append([])
            spans[-1].append(token)
        previous = target
    print(f"\n{label}: tokens with loss")
    for span in spans:
        print("  ", [tokenizer.decode([t]) for t in span])
    return [tokenizer.decode(span) for span in spans]


@pytest.mark.parametrize(
    ("loss_on", "expected"),
    [
        ("last_turn", [ANSWER_TEXT + "<|im_end|>\n"]),
        ("all_turns", ["It left our warehouse on Monday.<|im_end|>\n", ANSWER_TEXT + "<|im_end|>\n"]),
    ],
)
def test_smollm2_template_loss_tokens(task, smollm2_tokenizer, loss_on, expected):
    encoded = encode_example(task, smollm2_tokenizer, FOLLOW_UP, ANSWER, 512, HISTORY, loss_on)
    assert loss_spans(smollm2_tokenizer, encoded, f"SmolLM2 template, {loss_on}") == expected
    # Role headers stay outside the loss: each span starts right after the assistant header.
    text = smollm2_tokenizer.decode(encoded.input_ids)
    for span in expected:
        assert text.count("<|im_start|>assistant\n" + span) == 1
    assert not encoded.truncated


@pytest.mark.parametrize(
    ("loss_on", "expected"),
    [
        ("last_turn", [ANSWER_TEXT + "<|eot_id|>"]),
        ("all_turns", ["It left our warehouse on Monday.<|eot_id|>", ANSWER_TEXT + "<|eot_id|>"]),
    ],
)
def test_llama3_style_template_loss_tokens(task, llama3_style_tokenizer, loss_on, expected):
    tokenizer = llama3_style_tokenizer
    encoded = encode_example(task, tokenizer, FOLLOW_UP, ANSWER, 512, HISTORY, loss_on)
    assert loss_spans(tokenizer, encoded, f"Llama-3-style template, {loss_on}") == expected
    header = "<|start_header_id|>assistant<|end_header_id|>\n\n"
    text = tokenizer.decode(encoded.input_ids)
    assert text.startswith("<|start_header_id|>system<|end_header_id|>\n\nYou triage")
    for span in expected:
        assert text.count(header + span) == 1
    # The template's markers are single special tokens, and none of the headers carries loss.
    eot = tokenizer.convert_tokens_to_ids("<|eot_id|>")
    labelled_eot = sum(1 for t in encoded.labels if t == eot)
    assert labelled_eot == len(expected) and encoded.input_ids.count(eot) == 5  # system, 2 x (user, assistant)
    assert tokenizer.convert_tokens_to_ids("<|start_header_id|>") not in encoded.labels


def test_a_template_that_rewrites_earlier_turns_is_refused_for_all_turns(task, smollm2_ref):
    tokenizer = load_tokenizer(smollm2_ref)
    tokenizer.chat_template = REWRITES_EARLIER_TURNS
    history = (HISTORY[0], {"role": "assistant", "content": "<think>look it up</think>It left on Monday."})
    with pytest.raises(ModelError, match=r"assistant turn 1 .* once a later turn follows") as raised:
        encode_example(task, tokenizer, FOLLOW_UP, ANSWER, 512, history, "all_turns")
    assert "loss_on: last_turn" in str(raised.value)
    # Loss on the last turn alone does not depend on how earlier turns are rendered.
    encoded = encode_example(task, tokenizer, FOLLOW_UP, ANSWER, 512, history, "last_turn")
    assert loss_spans(tokenizer, encoded, "rewriting template, last_turn") == [ANSWER_TEXT + "<|im_end|>\n"]


def test_truncation_drops_the_oldest_turn_with_its_loss_and_keeps_the_answer(task, smollm2_tokenizer):
    history = (
        {"role": "user", "content": "Hello, I ordered a lamp. " * 20},
        {"role": "assistant", "content": "Thanks, which order number?"},
        *HISTORY,
    )
    full = encode_example(task, smollm2_tokenizer, FOLLOW_UP, ANSWER, 4096, history, "all_turns")
    shorter = encode_example(task, smollm2_tokenizer, FOLLOW_UP, ANSWER, 4096, HISTORY, "all_turns")
    assert loss_spans(smollm2_tokenizer, full, "untruncated")[0] == "Thanks, which order number?<|im_end|>\n"
    cut = encode_example(task, smollm2_tokenizer, FOLLOW_UP, ANSWER, len(shorter.input_ids) + 5, history, "all_turns")
    assert cut.truncated and cut.input_ids == shorter.input_ids and cut.labels == shorter.labels
    assert loss_spans(smollm2_tokenizer, cut, "oldest turn dropped") == [
        "It left our warehouse on Monday.<|im_end|>\n",
        ANSWER_TEXT + "<|im_end|>\n",
    ]


def conversations() -> list[tuple[tuple[dict[str, str], ...], str]]:
    """Three conversations that open with the same exchange, so their common tokens run into an assistant turn."""
    return [
        (HISTORY, FOLLOW_UP),
        (HISTORY, "Can you send me the tracking link?"),
        ((*HISTORY, {"role": "user", "content": "Thanks."}, {"role": "assistant", "content": "You're welcome."}), "hi"),
    ]


def test_shared_prefix_never_holds_a_labelled_token(task, smollm2_tokenizer):
    encoded = [encode_example(task, smollm2_tokenizer, q, ANSWER, 512, h, "all_turns") for h, q in conversations()]
    last_only = [encode_example(task, smollm2_tokenizer, q, ANSWER, 512, h, "last_turn") for h, q in conversations()]
    prefix = shared_prefix_length(encoded)
    # The rows share the system prompt and the first exchange; the prefix stops before its assistant turn.
    assert shared_prefix_length(last_only) > prefix > 100
    for e in encoded:
        first_label = next(i for i, t in enumerate(e.labels) if t != IGNORE)
        assert first_label > prefix and all(t == IGNORE for t in e.labels[:prefix])
    assert smollm2_tokenizer.decode(encoded[0].input_ids[:prefix]).endswith("<|im_start|>assistant")


def test_all_turns_loss_equals_plain_cross_entropy_on_the_tiny_model(task, tiny_model_dir):
    ref = resolve_base_model(str(tiny_model_dir))
    tokenizer = load_tokenizer(ref, padding_side="right")
    torch.manual_seed(0)
    model = load_model(ref)
    encoded = [encode_example(task, tokenizer, q, ANSWER, 512, h, "all_turns") for h, q in conversations()]
    batch = collate(encoded, tokenizer.pad_token_id)
    assert "prefix_ids" in batch  # the shared-prefix path is the one under test
    with torch.no_grad():
        loss, count = answer_loss(model, batch)
        plain, plain_count = torch.tensor(0.0), 0
        for e in encoded:
            logits = model(input_ids=torch.tensor([e.input_ids])).logits[0, :-1]
            targets = torch.tensor(e.labels[1:])
            keep = targets != IGNORE
            plain += F.cross_entropy(logits[keep].float(), targets[keep], reduction="sum")
            plain_count += int(keep.sum())
    assert count == plain_count == sum(e.answer_tokens for e in encoded)
    # The history's assistant turns are in the loss: more tokens than the final answers alone.
    last_only = [encode_example(task, tokenizer, q, ANSWER, 512, h, "last_turn") for h, q in conversations()]
    assert count > sum(e.answer_tokens for e in last_only)
    assert loss.item() == pytest.approx(plain.item(), rel=1e-5)
