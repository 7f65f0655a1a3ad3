"""The gateway's failure paths over real HTTP: slow uploads hold no slot, a conversation is bounded in
tokens, a request given up on stops its generation, and a client never sees the server's insides."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time

import openai
import pytest

from slmkit.monitor import RequestLog
from slmkit.serve import start_server
from slmkit.serve.protocol import APIError
from slmkit.serve.service import ChatService
from tests.serve.conftest import make_project, release_adapter

NAME = "support-tickets"
LONG = 6000  # answer tokens: about ten seconds of the tiny model, unless someone stops it


def ask(client: openai.OpenAI, content: str = "hi", **kwargs):
    return client.chat.completions.create(model=NAME, messages=[{"role": "user", "content": content}], **kwargs)


def log_row(config, outcome_kind: str, deadline_s: float = 30.0) -> dict:
    """The request log's row with this error kind, once the engine has written it."""
    deadline = time.monotonic() + deadline_s
    while True:
        with RequestLog(config.state_dir / "requests.db") as log:
            rows = [r for r in log.rows() if r["error_kind"] == outcome_kind]
        if rows or time.monotonic() > deadline:
            assert rows, f"no {outcome_kind} row in the request log"
            return rows[0]
        time.sleep(0.2)


def test_slow_uploads_hold_no_slot_and_are_cut_off_with_408(tmp_path, tiny_model_dir, adapters) -> None:
    settings = {"serve.max_concurrent": 1, "serve.body_timeout_s": 2.0}
    config = make_project(tmp_path / "project", tiny_model_dir, **settings)
    release_adapter(config, adapters[0], tiny_model_dir)
    with start_server(config) as handle:
        slow = []
        for _ in range(3):  # headers and a tenth of the body, then nothing
            sock = socket.create_connection((handle.host, handle.port), timeout=15)
            sock.sendall(
                b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n" + b'{"model": "'
            )
            slow.append(sock)
        time.sleep(0.3)
        client = openai.OpenAI(base_url=handle.url, api_key="x", max_retries=0)
        assert ask(client).model == f"{NAME}@1"  # the one slot was free: the uploads never took it
        for sock in slow:
            began = time.monotonic()
            reply = b""
            while chunk := sock.recv(4096):  # the server closes the connection after its 408
                reply += chunk
            sock.close()
            reply = reply.decode()
            assert reply.startswith("HTTP/1.1 408") and "serve.body_timeout_s" in reply
            assert time.monotonic() - began < 10


def test_the_whole_conversation_is_bounded_in_tokens(tmp_path, tiny_model_dir, adapters) -> None:
    config = make_project(tmp_path / "project", tiny_model_dir)
    release_adapter(config, adapters[0], tiny_model_dir)
    turn = "please read this long message about my order " * 60  # about 540 tokens, 2,700 characters
    history = [{"role": role, "content": turn} for role in ("user", "assistant") * 2]
    with start_server(config) as handle:
        client = openai.OpenAI(base_url=handle.url, api_key="x", max_retries=0)
        # Every message is short enough alone (data.max_input_chars is 8000); together they are not.
        with pytest.raises(openai.BadRequestError) as caught:
            client.chat.completions.create(model=NAME, messages=[*history, {"role": "user", "content": "so?"}])
        body = caught.value.body
        assert body["code"] == "prompt_too_long" and body["param"] == "messages"
        assert f"{NAME}@1 takes at most 1024 (the train.max_seq_len it was trained with)" in body["message"]
        tokens = int(body["message"].split("the prompt is ")[1].split(" tokens")[0])
        assert 2000 < tokens < 2400
        # Far past it in characters: refused before anything is tokenized.
        huge = [{"role": "user", "content": "x" * 7000}, {"role": "assistant", "content": "y" * 7000}] * 3
        with pytest.raises(openai.BadRequestError, match=r"far past the 1024 tokens") as caught:
            client.chat.completions.create(model=NAME, messages=[*huge, {"role": "user", "content": "so?"}])
        assert caught.value.body["code"] == "prompt_too_long"
        # A conversation within the limit is answered as before.
        short = client.chat.completions.create(model=NAME, messages=[history[0], {"role": "user", "content": "?"}])
        assert short.model == f"{NAME}@1"
    assert log_row(config, "bad_request")["release_version"] == 1


def test_a_request_that_times_out_stops_its_generation(tmp_path, tiny_model_dir, adapters) -> None:
    settings = {"serve.max_new_tokens": LONG, "serve.timeout_s": 1.0, "serve.max_retries": 0}
    config = make_project(tmp_path / "project", tiny_model_dir, **settings)
    release_adapter(config, adapters[0], tiny_model_dir)
    with start_server(config) as handle:
        client = openai.OpenAI(base_url=handle.url, api_key="x", max_retries=0, timeout=60)
        began = time.monotonic()
        with pytest.raises(openai.InternalServerError, match=r"serve\.timeout_s"):
            ask(client)
        row = log_row(config, "timeout")
        stopped_after = time.monotonic() - began
    # The engine stopped at the next token: a fraction of the answer it would have written, and
    # the row was logged seconds before a full answer could have been.
    assert row["outcome"] == "error" and 0 < row["completion_tokens"] < LONG / 2, row
    assert stopped_after < 6


def test_a_client_that_hangs_up_stops_its_generation(tmp_path, tiny_model_dir, adapters) -> None:
    settings = {"serve.max_new_tokens": LONG, "serve.timeout_s": 120.0, "serve.max_retries": 0}
    config = make_project(tmp_path / "project", tiny_model_dir, **settings)
    release_adapter(config, adapters[0], tiny_model_dir)
    with start_server(config) as handle:
        impatient = openai.OpenAI(base_url=handle.url, api_key="x", max_retries=0, timeout=1.0)
        with pytest.raises(openai.APITimeoutError):
            ask(impatient)  # the client gives up after a second and closes the connection
        row = log_row(config, "cancelled", deadline_s=6)
        assert row["outcome"] == "error" and 0 < row["completion_tokens"] < LONG / 2, row
        assert handle.service.in_flight == 0  # its slot was given back
        client = openai.OpenAI(base_url=handle.url, api_key="x", max_retries=0, timeout=60)
        began = time.monotonic()
        assert ask(client, max_tokens=8).model == f"{NAME}@1"
        assert time.monotonic() - began < 5  # the engine is not still writing the abandoned answer


def test_an_engine_that_cannot_start_answers_503_with_its_log_kept_for_the_operator(
    tmp_path, tiny_model_dir, adapters, caplog
) -> None:
    crashing = tmp_path / "python"
    crashing.write_text("#!/bin/sh\necho 'cannot read /srv/models/base.bin for jane.doe@example.com'\nexit 3\n")
    crashing.chmod(0o755)
    config = make_project(
        tmp_path / "project", tiny_model_dir, **{"serve.engine": "vllm", "serve.vllm_python": str(crashing)}
    )
    release_adapter(config, adapters[0], tiny_model_dir)
    service = ChatService(config)
    body = json.dumps({"model": NAME, "messages": [{"role": "user", "content": "hi"}]}).encode()
    try:
        with caplog.at_level(logging.ERROR, logger="slmkit.serve"), pytest.raises(APIError) as caught:
            asyncio.run(service.chat(body, request_id="chatcmpl-engine-down", received=time.perf_counter()))
    finally:
        service.close()
    error = caught.value
    assert (error.status, error.code) == (503, "engine_unavailable")
    assert (
        error.message
        == "the model engine is unavailable; retry shortly (request chatcmpl-engine-down: the server log says why)"
    )
    (logged,) = [r.getMessage() for r in caplog.records if "chatcmpl-engine-down" in r.getMessage()]
    assert "exited with code 3" in logged and "/srv/models/base.bin" in logged  # for the operator
    assert "jane.doe@example.com" not in logged and "<EMAIL_1>" in logged  # redacted like the request log
