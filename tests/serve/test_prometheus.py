"""/metrics after known traffic: counts match the requests made, token timings come from the
generation loop, streamed answers are proper OpenAI chunks, and no personal data is logged."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request

import openai
import pytest

from slmkit.monitor import RequestLog
from slmkit.serve import start_server
from tests.serve.conftest import MAX_RETRIES, make_project, metric, release_adapter, scrape

NAME = "support-tickets"
EMAIL, PHONE = "jane.doe@example.com", "+1 415 555 0132"


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir, adapters):
    """Release 1 (production, with a refusal rule) and 2 (without: no valid answer -> 502)."""
    config = make_project(tmp_path_factory.mktemp("metrics"), tiny_model_dir)
    release_adapter(config, adapters[0], tiny_model_dir)
    strict = config.resolved()
    strict["task"]["refusal"] = None
    release_adapter(config, adapters[1], tiny_model_dir, alias=None, recorded_config=strict)
    with start_server(config) as handle:
        yield config, handle


def stream_raw(url: str, content: str) -> list[dict | str]:
    """A streamed chat completion read as raw server-sent events: the JSON chunks, then '[DONE]'."""
    body = {"model": NAME, "messages": [{"role": "user", "content": content}], "stream": True,
            "stream_options": {"include_usage": True}}  # fmt: skip
    request = urllib.request.Request(
        f"{url}/chat/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = response.read().decode().split("\n\n")
    assert events[-1] == "" and all(e.startswith("data: ") for e in events[:-1])
    return [e[6:] if e == "data: [DONE]" else json.loads(e[6:]) for e in events[:-1]]


def test_metrics_count_the_requests_made_and_time_tokens_in_the_generation_loop(served) -> None:
    _, handle = served
    release = f"{NAME}@1"
    streams = [stream_raw(handle.url, f"My parcel {i} is late.") for i in range(2)]
    for chunks in streams:
        assert chunks[-1] == "[DONE]"
        body = [c for c in chunks[:-1] if isinstance(c, dict)]
        assert all(c["object"] == "chat.completion.chunk" and c["id"] == body[0]["id"] for c in body)
        assert body[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
        assert body[-2]["choices"][0]["finish_reason"] == "stop" and body[-1]["choices"] == []
    after_streams = scrape(handle.url)
    # every streamed request has its first token timed, from the engine's own timestamps
    assert metric(after_streams, "slmkit_time_to_first_token_seconds_count", release=release) == len(streams)

    client = openai.OpenAI(base_url=handle.url, api_key="x", max_retries=0)
    plain = [
        client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": f"Refund {i}?"}])
        for i in range(3)
    ]
    failures = (
        ("no-such-model", openai.NotFoundError, "model 'no-such-model' does not exist"),
        (f"{NAME}@2", openai.InternalServerError, f"{NAME}@2 produced no valid answer"),
    )
    for model, status, why in failures:
        with pytest.raises(status, match=why):
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.BadRequestError, match="the request has no user message"):
        client.chat.completions.create(model=NAME, messages=[{"role": "system", "content": "no user turn"}])
    samples = scrape(handle.url)

    answered = len(streams) + len(plain)
    count = lambda name, **labels: metric(samples, name, **labels)  # noqa: E731
    assert count("slmkit_requests_total", release=release, outcome="refused", status="200") == answered
    assert count("slmkit_requests_total", release=release, outcome="ok", status="200") == 0
    assert count("slmkit_requests_total", release="none", outcome="unknown_model", status="404") == 1
    assert count("slmkit_requests_total", release=release, outcome="bad_request", status="400") == 1
    assert count("slmkit_requests_total", release=f"{NAME}@2", outcome="no_valid_answer", status="502") == 1
    # the rates' counters: the tiny random model never writes a valid answer, the guard refuses for it
    assert count("slmkit_answers_total", release=release) == answered
    assert count("slmkit_schema_valid_first_try_total", release=release) == 0
    assert ("slmkit_schema_valid_first_try_total", frozenset({("release", release)})) in samples  # 0, not absent
    assert count("slmkit_refusals_total", release=release) == answered
    assert count("slmkit_guard_replacements_total", release=release) == answered
    assert count("slmkit_guard_retries_total", release=release) == answered * MAX_RETRIES
    usage = [r.usage for r in plain] + [c[-2]["usage"] for c in streams]
    completion = sum(u.completion_tokens if hasattr(u, "completion_tokens") else u["completion_tokens"] for u in usage)
    prompt = sum(u.prompt_tokens if hasattr(u, "prompt_tokens") else u["prompt_tokens"] for u in usage)
    assert count("slmkit_completion_tokens_total", release=release) == completion
    assert count("slmkit_prompt_tokens_total", release=release) == prompt
    # histograms: one first token per answered request; one gap between each two tokens of an attempt
    assert count("slmkit_time_to_first_token_seconds_count", release=release) == answered
    attempts = answered * (1 + MAX_RETRIES)
    assert count("slmkit_inter_token_latency_seconds_count", release=release) == completion - attempts
    assert count("slmkit_request_latency_seconds_count", release=release) == answered
    first, total = (
        count(f"slmkit_{n}_seconds_sum", release=release) for n in ("time_to_first_token", "request_latency")
    )
    assert 0 < first < total  # the first token comes before the validated answer
    assert count("slmkit_queue_depth") == 0 and count("slmkit_requests_in_flight") == 0
    assert not [name for name, _ in samples if name.endswith("_created")]


def test_generation_timestamps_are_one_per_token_in_order(served) -> None:
    from slmkit.models.generate import generate

    loaded = served[1].service.cache.get(served[1].service.resolve(NAME))
    before = time.perf_counter()
    model, tokenizer = loaded.generator.model, loaded.generator.tokenizer  # the transformers engine's
    out = generate(model, tokenizer, ["a", "a longer prompt"], max_new_tokens=6, batch_size=2)
    for generation in out:
        times = generation.token_times
        assert len(times) == generation.completion_tokens > 0
        assert before < times[0] and list(times) == sorted(times) and times[-1] < time.perf_counter()


def test_personal_data_never_reaches_the_request_log_or_the_server_log(served, caplog, capfd) -> None:
    config, handle = served
    client = openai.OpenAI(base_url=handle.url, api_key="x", max_retries=0)
    text = f"I am Jane, write to {EMAIL} or call {PHONE} about order ORD-123456."
    caplog.set_level(logging.DEBUG)
    ids = [client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": text}]).id]
    # The one client string the log keeps is the model asked for.
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.chat.completions.create(model=f"{EMAIL} {PHONE}", messages=[{"role": "user", "content": text}])
    request = urllib.request.Request(f"{handle.url}/chat/completions", data=b'{"model": "' + EMAIL.encode() + b'"')
    with pytest.raises(urllib.error.HTTPError) as not_json:  # a 400 that must not echo into the log either
        urllib.request.urlopen(request, timeout=30)
    assert not_json.value.code == 400 and b"not valid JSON" in not_json.value.read()
    handle.service.recorder.flush()

    log = RequestLog(config.state_dir / "requests.db")
    rows = log.rows(limit=10)
    log.close()
    assert ids[0] in {r["request_id"] for r in rows}
    assert any(r["model_ref"] == "<EMAIL_1> <PHONE_1>" for r in rows)  # redacted, still readable
    stored = b"".join(p.read_bytes() for p in config.state_dir.glob("requests.db*"))
    printed = caplog.text + "".join(capfd.readouterr())
    for secret in (EMAIL, PHONE, "jane.doe", "555 0132"):
        assert secret.encode() not in stored
        assert secret not in printed
