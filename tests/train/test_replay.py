"""Self-replay: base answers generated once and cached, mixed in at the configured share, loss exact in
mixed batches, bad prompt files named by line, and drift measured against the base."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
import yaml

from slmkit.config import load_config
from slmkit.data import run_data_build
from slmkit.errors import DataError
from slmkit.models import load_model, load_tokenizer, resolve_base_model
from slmkit.models.general import BaseAnswer, encode_replay, measure_drift, read_prompts
from slmkit.task import Task
from slmkit.train import run_train
from slmkit.train.batches import IGNORE, collate, encode_example
from slmkit.train.loss import answer_loss
from slmkit.train.replay import prepare_replay
from tests.conftest import read_jsonl

ANSWER = {"category": "shipping", "priority": "normal", "order_id": "ORD-482913", "product": None}
TICKETS = [
    "Subject: where is it\n\nMy parcel ORD-482913 has not arrived.",
    "Subject: Late\n\nTracking for my order has not moved in a week, can you check?",
    "Subject: help\n\nhi",
]
GENERAL = [
    BaseAnswer("What is 2 + 2?", "2 + 2 is 4.", True),
    BaseAnswer("Name three colours.", "Red, green and blue.", True),
    BaseAnswer("Write a haiku about rain.", "Soft rain on the roof, the garden drinks", False),
]


def _set_replay(project, **settings) -> None:
    path = project / "slmkit.yaml"
    config = yaml.safe_load(path.read_text())
    config["train"]["replay"] = settings
    path.write_text(yaml.safe_dump(config, sort_keys=False))


@pytest.fixture
def tiny(tiny_model_dir):
    ref = resolve_base_model(str(tiny_model_dir))
    return ref, load_tokenizer(ref, padding_side="right"), load_model(ref)


def _count_generate_calls(model) -> list[int]:
    """Count calls of the real model's generate (it still runs)."""
    calls = [0]
    real = model.generate

    def counted(*args, **kwargs):
        calls[0] += 1
        return real(*args, **kwargs)

    model.generate = counted
    return calls


def test_base_answers_are_generated_once_then_read_from_the_cache(tiny_project, tiny):
    ref, tokenizer, model = tiny
    (tiny_project / "extra.jsonl").write_text('{"prompt": "Explain what a VPN is."}\n\n{"prompt": "Say hi."}\n')
    _set_replay(tiny_project, share=0.2, prompts_file="extra.jsonl", max_new_tokens=6)
    config = load_config(tiny_project)
    calls = _count_generate_calls(model)

    first = prepare_replay(config, ref.sha256, model, tokenizer, task_rows=100, log=lambda _: None)
    assert calls[0] > 0
    assert first.record["generated"] == first.record["prompts"] == 49 + 2  # shipped (less held-out) + the user's
    assert first.record["user_prompts"] == 2
    cache = config.state_dir / "replay"
    assert {p.relative_to(tiny_project).as_posix() for p in cache.iterdir()} == {
        first.record["cache"],
        first.drift_cache,
    }

    before = calls[0]
    second = prepare_replay(config, ref.sha256, model, tokenizer, task_rows=100, log=lambda _: None)
    assert calls[0] == before, "the second run must read the cached answers, not generate"
    assert second.record["generated"] == 0 and second.record["cache"] == first.record["cache"]
    assert second.rows == first.rows  # same answers, same seeded choice
    assert second.drift_before == first.drift_before

    # Other decoding settings are other answers: a new cache entry.
    _set_replay(tiny_project, share=0.2, prompts_file="extra.jsonl", max_new_tokens=7)
    third = prepare_replay(load_config(tiny_project), ref.sha256, model, tokenizer, 100, log=lambda _: None)
    assert calls[0] > before and third.record["cache"] != first.record["cache"]


@pytest.mark.parametrize(("share", "task_rows"), [(0.2, 100), (0.1, 37), (0.4, 10)])
def test_replay_rows_are_the_configured_share_of_training(tiny_project, tiny, share, task_rows):
    ref, tokenizer, model = tiny
    _set_replay(tiny_project, share=share, max_new_tokens=4)
    replay = prepare_replay(load_config(tiny_project), ref.sha256, model, tokenizer, task_rows, log=lambda _: None)
    rows = len(replay.rows)
    assert rows / (rows + task_rows) == pytest.approx(share, abs=0.5 / (rows + task_rows))
    # Prompts repeat evenly when more rows are needed than there are prompts.
    counts: dict[tuple[int, ...], int] = {}
    for row in replay.rows:
        counts[tuple(row.input_ids)] = counts.get(tuple(row.input_ids), 0) + 1
    assert max(counts.values()) - min(counts.values()) <= 1


def test_no_replay_rows_when_the_share_is_zero_but_drift_is_still_measured(tiny_project, tiny):
    ref, tokenizer, model = tiny
    _set_replay(tiny_project, share=0.0, max_new_tokens=4)
    replay = prepare_replay(load_config(tiny_project), ref.sha256, model, tokenizer, 100, log=lambda _: None)
    assert replay.rows == [] and replay.record == {"share": 0.0, "rows": 0}
    assert len(replay.drift_rows) == 12 and replay.drift_before.tokens > 0


def test_a_bad_prompts_file_line_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "fine"}\n{"prompt": "also fine"}\n{"prompt": "broken\n')
    with pytest.raises(DataError, match=r"prompts\.jsonl:3: not valid JSON"):
        read_prompts(path)
    path.write_text('{"prompt": "fine"}\n{"text": "wrong field"}\n')
    with pytest.raises(DataError, match=r"prompts\.jsonl:2: needs a non-empty string field `prompt`"):
        read_prompts(path)
    with pytest.raises(DataError, match="prompts_file not found"):
        read_prompts(tmp_path / "missing.jsonl")


def test_replay_examples_carry_loss_on_the_base_answer_only(smollm2_ref):
    tokenizer = load_tokenizer(smollm2_ref)
    finished, cut = encode_replay(tokenizer, GENERAL[0], 512), encode_replay(tokenizer, GENERAL[2], 512)
    assert finished is not None and cut is not None
    assert tokenizer.decode([t for t in finished.labels if t != IGNORE]) == "2 + 2 is 4.<|im_end|>\n"
    # An answer cut by max_new_tokens is not taught to end there.
    assert tokenizer.decode([t for t in cut.labels if t != IGNORE]) == GENERAL[2].answer
    prompt = tokenizer.decode(finished.input_ids[: finished.labels.index(next(t for t in finished.labels if t >= 0))])
    assert "user\nWhat is 2 + 2?<|im_end|>\n<|im_start|>assistant\n" in prompt
    assert "triage" not in prompt  # the plain chat template, not the task's system prompt
    # Too long for max_seq_len: the answer loses its end, the prompt stays whole.
    short = encode_replay(tokenizer, GENERAL[1], len(finished.input_ids) - 8)
    assert (
        short is not None
        and short.truncated
        and short.input_ids[:20] == encode_replay(tokenizer, GENERAL[1], 512).input_ids[:20]
    )


def test_loss_in_batches_mixing_task_and_replay_rows_is_plain_cross_entropy(tiny_project, tiny):
    _, tokenizer, base = tiny
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear", task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.1)
    task = Task.from_config(load_config(tiny_project))
    task_rows = [encode_example(task, tokenizer, t, ANSWER, 512) for t in TICKETS]
    replay_rows = [encode_replay(tokenizer, a, 512) for a in GENERAL]
    assert all(r is not None for r in replay_rows)

    def reference(rows) -> tuple[torch.Tensor, int]:
        total, count = torch.zeros(()), 0
        for row in rows:
            logits = model(input_ids=torch.tensor([row.input_ids])).logits[0, :-1]
            targets = torch.tensor(row.labels[1:])
            total = total + F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="sum")
            count += int((targets != IGNORE).sum())
        return total, count

    batches = {
        "mixed": (task_rows[:2] + replay_rows[:2], False),  # no common system prompt: nothing shared
        "replay only": (replay_rows, True),  # the template's default system prompt is shared
        "task only": (task_rows, True),
    }
    for name, (rows, shares) in batches.items():
        batch = collate(rows, tokenizer.pad_token_id)
        assert ("prefix_ids" in batch) is shares, name
        loss, count = answer_loss(model, batch)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
        model.zero_grad()
        expected, expected_count = reference(rows)
        expected.backward()
        assert count == expected_count == sum(r.answer_tokens for r in rows), name
        assert loss.item() == pytest.approx(expected.item(), rel=1e-5), name
        for n, p in model.named_parameters():
            if p.requires_grad:
                torch.testing.assert_close(grads[n], p.grad, rtol=1e-4, atol=1e-6, msg=f"{name}: {n}")
        model.zero_grad()


def test_drift_grows_when_the_weights_move_away_from_the_base(tiny_project, tiny):
    ref, tokenizer, model = tiny
    _set_replay(tiny_project, share=0.0, max_new_tokens=8)
    replay = prepare_replay(load_config(tiny_project), ref.sha256, model, tokenizer, 100, log=lambda _: None)
    before = replay.drift_before
    assert before == measure_drift(model, replay.drift_rows)  # deterministic: depends on the weights only
    torch.manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.5)
    after = measure_drift(model, replay.drift_rows)
    assert after.nll > before.nll + 0.5 and after.token_agreement <= before.token_agreement
    assert after.tokens == before.tokens > 0


@pytest.mark.slow
def test_the_real_base_model_agrees_with_its_own_answers(tmp_path, smollm2_ref):
    tokenizer, model = load_tokenizer(smollm2_ref, padding_side="right"), load_model(smollm2_ref)
    from slmkit.models.general import base_answers, shipped_prompts

    held_out = shipped_prompts()[1]
    cached = base_answers(
        model, tokenizer, held_out, base_sha256=smollm2_ref.sha256, max_new_tokens=24, cache_dir=tmp_path
    )
    rows = [encode_replay(tokenizer, a, 512) for a in cached.answers]
    score = measure_drift(model, [r for r in rows if r is not None])
    print(score)
    # Greedy answers are the base's own top choices: the replay rows must line up with what was
    # generated token for token (a shifted or re-tokenized answer would break agreement), and a
    # 135M model is sure of its own answers well under 1 nat per token (SmolLM2 here: ~0.75).
    assert score.token_agreement > 0.95 and score.nll < 1.0


def test_training_with_replay_records_the_mix_and_the_drift(tiny_project):
    _set_replay(tiny_project, share=0.25, max_new_tokens=6)
    config = load_config(tiny_project)
    run_data_build(config)
    result = run_train(config, progress=False, log=lambda _: None)
    m = result.metrics
    assert m["replay"]["rows"] == round(0.25 * (m["train_examples"] - m["replay"]["rows"]) / 0.75)
    assert m["replay"]["rows"] / m["train_examples"] == pytest.approx(0.25, abs=0.01)
    assert m["replay"]["generated"] == 49
    drift = m["replay_drift"]
    assert drift["prompts"] == 12 and set(drift["before"]) == set(drift["after"]) == {"nll", "token_agreement"}
    assert drift["after"] != drift["before"]  # the adapter trained, so the model moved
    assert json.loads((result.run_dir / "run.json").read_text())["metrics"]["replay_drift"] == drift
    assert read_jsonl(result.run_dir / "metrics.jsonl")[-1]["step"] == m["steps"]

    again = run_train(config, progress=False, log=lambda _: None)
    assert again.metrics["replay"]["generated"] == 0 and again.metrics["replay"]["cache"] == m["replay"]["cache"]
