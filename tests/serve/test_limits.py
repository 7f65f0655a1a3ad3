"""Limits a client runs into: 429 with Retry-After past serve.max_concurrent, 504 past
serve.timeout_s, 400 past serve.max_messages; each counted in /metrics."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from slmkit.serve import start_server
from tests.serve.conftest import make_project, metric, release_adapter, scrape

NAME = "support-tickets"
BURST = 10


def ask(client: openai.OpenAI, **kwargs):
    return client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "hi"}], **kwargs)


def test_a_burst_over_max_concurrent_gets_429_with_retry_after_while_the_rest_are_answered(
    tmp_path, tiny_model_dir, adapters
) -> None:
    # Long answers keep the first two busy for a while, so the burst arrives while they generate.
    settings = {"serve.max_concurrent": 2, "serve.max_new_tokens": 96, "serve.max_messages": 3}
    config = make_project(tmp_path / "project", tiny_model_dir, **settings)
    release_adapter(config, adapters[0], tiny_model_dir)
    with start_server(config) as handle:
        client = openai.OpenAI(base_url=handle.url, api_key="x", max_retries=0)
        start = threading.Barrier(BURST)

        def one(_: int) -> int | openai.RateLimitError:
            start.wait()
            try:
                ask(client)
                return 200
            except openai.RateLimitError as exc:
                return exc

        with ThreadPoolExecutor(max_workers=BURST) as pool:
            results = list(pool.map(one, range(BURST)))
        limited = [r for r in results if isinstance(r, openai.RateLimitError)]
        answered = results.count(200)
        assert answered >= 2 and limited and answered + len(limited) == BURST
        for exc in limited:
            assert exc.status_code == 429 and exc.response.headers["Retry-After"] == "1"
            assert exc.body["code"] == "overloaded" and "serve.max_concurrent" in exc.body["message"]
        assert ask(client).model == f"{NAME}@1"  # the limit counts requests in flight, not a quota

        with pytest.raises(openai.BadRequestError, match=r"serve\.max_messages"):
            client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": "hi"}] * 4)
        samples = scrape(handle.url)
    assert metric(samples, "slmkit_requests_total", release="none", outcome="overloaded", status="429") == len(limited)
    assert (
        metric(samples, "slmkit_requests_total", release=f"{NAME}@1", outcome="refused", status="200") == answered + 1
    )
    assert metric(samples, "slmkit_requests_in_flight") == 0


def test_an_answer_later_than_timeout_s_is_504(tmp_path, tiny_model_dir, adapters) -> None:
    config = make_project(tmp_path / "project", tiny_model_dir, **{"serve.timeout_s": 0.001})
    release_adapter(config, adapters[0], tiny_model_dir)
    with start_server(config) as handle:
        client = openai.OpenAI(base_url=handle.url, api_key="x", max_retries=0)
        with pytest.raises(openai.InternalServerError, match=r"serve\.timeout_s") as caught:
            ask(client)
        assert caught.value.status_code == 504 and caught.value.body["code"] == "timeout"
        samples = scrape(handle.url)
    assert metric(samples, "slmkit_requests_total", release=f"{NAME}@1", outcome="timeout", status="504") == 1
