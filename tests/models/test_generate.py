"""Generation reuses the shared system-prompt cache without changing a single answer."""

from __future__ import annotations

import pytest

from slmkit.models import generate as gen


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from slmkit.models import load_model, load_tokenizer, resolve_base_model

    ref = resolve_base_model(str(tiny_model_dir))
    return load_model(ref), load_tokenizer(ref)


def _prompts(tokenizer, inputs):
    system = "You sort support tickets. Reply with one JSON object naming the category and priority."
    return [
        tokenizer.apply_chat_template(
            [{"role": "system", "content": system}, {"role": "user", "content": text}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for text in inputs
    ]


INPUTS = [
    "my card was charged twice",
    "where is my parcel? it has been two weeks and the tracking page has not moved at all",
    "hi",
    "the speaker does not pair with my phone any more after the update",
    "please close my account",
]


def test_common_prefix_stops_at_first_difference_and_leaves_each_prompt_a_token():
    assert gen.common_prefix([[1, 2, 3, 4], [1, 2, 5]]) == [1, 2]
    assert gen.common_prefix([[1, 2, 3], [1, 2, 3]]) == [1, 2]  # identical prompts keep one token each
    assert gen.common_prefix([[7, 8], [9]]) == []
    assert gen.common_prefix([]) == []


def test_shared_prefix_gives_the_same_answers_as_full_prefill(tiny, monkeypatch):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer, INPUTS)
    shared = gen.generate(model, tokenizer, prompts, max_new_tokens=12, batch_size=2)
    monkeypatch.setattr(gen, "MIN_SHARED_TOKENS", 10**9)  # never share: every row prefills everything
    plain = gen.generate(model, tokenizer, prompts, max_new_tokens=12, batch_size=2)
    assert [g.text for g in shared] == [g.text for g in plain]
    assert [g.prompt_tokens for g in shared] == [g.prompt_tokens for g in plain]
    assert all(g.completion_tokens > 0 for g in shared)


def test_a_kept_prefix_serves_later_calls_and_a_foreign_one_is_ignored(tiny):
    model, tokenizer = tiny
    prompts = _prompts(tokenizer, INPUTS)
    encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    prefix = gen.SharedPrefix.compute(model, gen.common_prefix(encoded))
    assert len(prefix.ids) >= gen.MIN_SHARED_TOKENS and prefix.fits(encoded)
    expected = [g.text for g in gen.generate(model, tokenizer, prompts, max_new_tokens=10)]
    # One request at a time, as a server answers them, with the cache kept from load time.
    alone = [gen.generate(model, tokenizer, [p], max_new_tokens=10, prefix=prefix)[0].text for p in prompts]
    assert alone == expected
    # The same cache used twice is not consumed by the first call.
    assert gen.generate(model, tokenizer, prompts[:2], max_new_tokens=10, prefix=prefix)[0].text == expected[0]
    other = gen.SharedPrefix.compute(model, [1, 2, 3])
    assert not other.fits(encoded)
    assert [g.text for g in gen.generate(model, tokenizer, prompts, max_new_tokens=10, prefix=other)] == expected
