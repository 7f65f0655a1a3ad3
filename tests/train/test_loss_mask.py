"""Loss lands on the answer only, and the shared-prefix path computes exactly the same loss."""

from __future__ import annotations

import pytest
import torch

from slmkit.config import load_config
from slmkit.models import load_model, load_tokenizer, resolve_base_model
from slmkit.task import Task
from slmkit.train.batches import IGNORE, collate, encode_example, length_grouped_batches, shared_prefix_length
from slmkit.train.loss import answer_loss
from tests.conftest import EXAMPLE

ANSWER = {"category": "shipping", "priority": "normal", "order_id": "ORD-482913", "product": None}
TICKETS = [
    "Subject: where is it\n\nMy parcel ORD-482913 has not arrived.",
    "Subject: Late\n\nTracking for my order has not moved in a week, can you check?",
    "Subject: help\n\nhi",
]


@pytest.fixture(scope="module")
def task() -> Task:
    return Task.from_config(load_config(EXAMPLE, check_files=False))


def test_exactly_the_answer_and_end_of_turn_carry_loss(task, smollm2_ref):
    tokenizer = load_tokenizer(smollm2_ref)
    encoded = encode_example(task, tokenizer, TICKETS[0], ANSWER, max_seq_len=512)
    labelled = [t for t in encoded.labels if t != IGNORE]
    text = tokenizer.decode(labelled)
    print("tokens with loss:", repr(text))
    assert text == task.format_output(ANSWER) + "<|im_end|>\n"
    # Everything before the answer (system prompt, ticket, assistant header) carries none.
    first = encoded.labels.index(labelled[0])
    assert tokenizer.decode(encoded.input_ids[:first]).endswith("<|im_start|>assistant\n")
    assert all(t == IGNORE for t in encoded.labels[:first])


def test_truncation_cuts_the_input_never_the_instructions_or_the_answer(task, smollm2_ref):
    tokenizer = load_tokenizer(smollm2_ref)
    long_ticket = "Subject: long\n\nMy order ORD-482913 is late. " + "It is still not here. " * 300
    short = encode_example(task, tokenizer, "Subject: s\n\nhi", ANSWER, max_seq_len=4096)
    limit = len(short.input_ids) + 60
    encoded = encode_example(task, tokenizer, long_ticket, ANSWER, max_seq_len=limit)
    assert encoded.truncated and limit - 8 <= len(encoded.input_ids) <= limit
    text = tokenizer.decode(encoded.input_ids)
    assert text.startswith("<|im_start|>system\nYou triage")  # the instructions survive whole
    assert "My order ORD-482913 is late." in text and " …<|im_end|>" in text  # the input's start, marked cut
    assert tokenizer.decode([t for t in encoded.labels if t != IGNORE]).startswith(task.format_output(ANSWER))


def test_shared_prefix_stops_before_the_first_answer_token(task, smollm2_ref):
    tokenizer = load_tokenizer(smollm2_ref)
    encoded = [encode_example(task, tokenizer, t, ANSWER, 512) for t in TICKETS]
    prefix = shared_prefix_length(encoded)
    assert prefix > 100  # the system prompt and its header
    assert tokenizer.decode(encoded[0].input_ids[:prefix]).startswith("<|im_start|>system\nYou triage")
    for e in encoded:
        assert e.labels.index(next(t for t in e.labels if t != IGNORE)) > prefix


def test_shared_prefix_gives_the_same_loss_and_gradients(task, tiny_model_dir):
    ref = resolve_base_model(str(tiny_model_dir))
    tokenizer = load_tokenizer(ref, padding_side="right")
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(load_model(ref), LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)  # make the adapter matter, so its gradients are not trivially zero
    model.train()
    encoded = [encode_example(task, tokenizer, t, ANSWER, 512) for t in TICKETS]
    prefix = shared_prefix_length(encoded)
    results = []
    assert prefix > 0
    for share in (False, True):
        batch = collate(encoded, tokenizer.pad_token_id, share_prefix=share)
        assert ("prefix_ids" in batch) is share and (not share or batch["prefix_ids"].shape[1] == prefix)
        loss, count = answer_loss(model, batch)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        model.zero_grad()
        results.append((loss.item(), count, grads))
    (loss_full, n_full, g_full), (loss_shared, n_shared, g_shared) = results
    assert n_full == n_shared == sum(e.answer_tokens for e in encoded)
    assert loss_shared == pytest.approx(loss_full, rel=1e-5)
    for name in g_full:
        torch.testing.assert_close(g_shared[name], g_full[name], rtol=1e-4, atol=1e-6)


def test_length_grouped_batches_cover_every_example_once_and_reduce_padding(task, smollm2_ref):
    tokenizer = load_tokenizer(smollm2_ref)
    texts = [f"Subject: s\n\n{'word ' * (i * 7 % 60)}" for i in range(96)]
    encoded = [encode_example(task, tokenizer, t, ANSWER, 512) for t in texts]
    batches = length_grouped_batches(encoded, 8, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(96))
    assert batches == length_grouped_batches(encoded, 8, seed=1, epoch=0)
    assert batches != length_grouped_batches(encoded, 8, seed=1, epoch=1)

    def padding(bs: list[list[int]]) -> int:
        return sum(
            max(len(encoded[i].input_ids) for i in b) * len(b) - sum(len(encoded[i].input_ids) for i in b) for b in bs
        )

    in_order = [list(range(i, i + 8)) for i in range(0, 96, 8)]
    assert padding(batches) < padding(in_order) / 3
