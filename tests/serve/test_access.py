"""API keys over real HTTP with the official openai client: 401, 403, per-key model lists, revocation,
hashed storage, the `slmkit serve keys` commands, and refusing an open API on the network."""

from __future__ import annotations

import json
import stat
import urllib.error
import urllib.request

import openai
import pytest

from slmkit.errors import ServeError
from slmkit.monitor import RequestLog
from slmkit.serve import start_server
from slmkit.serve.keys import KeyStore, token_hash
from tests.serve.conftest import make_project, metric, release_adapter, scrape
from tests.test_cli import run_cli

NAME = "support-tickets"
OTHER = "other-task"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, tiny_model_dir, adapters):
    """Releases of two tasks; keys: `support-app` (support-tickets only), `ops` (everything)."""
    config = make_project(tmp_path_factory.mktemp("guarded"), tiny_model_dir)
    release_adapter(config, adapters[0], tiny_model_dir)
    release_adapter(config, adapters[1], tiny_model_dir, name=OTHER)
    with KeyStore(config.state_dir / "keys.db") as keys:
        tokens = {name: keys.add(name, models)[1] for name, models in (("support-app", [NAME]), ("ops", []))}
    with start_server(config) as handle:
        yield config, handle, tokens


def client(handle, token: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=handle.url, api_key=token, max_retries=0)


def ask(client: openai.OpenAI, model: str = NAME):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}], max_tokens=2)


def test_a_missing_or_unknown_key_is_401(guarded) -> None:
    _, handle, _ = guarded
    before = metric(scrape(handle.url), "slmkit_requests_total", release="none", outcome="unauthorized", status="401")
    with pytest.raises(openai.AuthenticationError, match="invalid API key") as caught:
        ask(client(handle, "slmkit-not-a-key"))
    assert caught.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError, match="invalid API key"):
        client(handle, "slmkit-not-a-key").models.list()
    request = urllib.request.Request(
        f"{handle.url}/chat/completions", data=b"{}", headers={"Content-Type": "application/json"}
    )
    with pytest.raises(urllib.error.HTTPError) as no_header:
        urllib.request.urlopen(request, timeout=30)
    assert no_header.value.code == 401 and no_header.value.headers["WWW-Authenticate"] == "Bearer"
    error = json.loads(no_header.value.read())["error"]
    assert "Authorization: Bearer" in error["message"] and "slmkit serve keys add" in error["message"]
    after = scrape(handle.url)  # /metrics answers without a key
    assert metric(after, "slmkit_requests_total", release="none", outcome="unauthorized", status="401") == before + 2


def test_a_key_limited_to_a_task_may_use_its_refs_and_nothing_else(guarded) -> None:
    _, handle, tokens = guarded
    app = client(handle, tokens["support-app"])
    assert ask(app).model == f"{NAME}@1"
    assert ask(app, f"{NAME}@1").model == f"{NAME}@1"
    assert ask(app, f"{NAME}@production").model == f"{NAME}@1"
    with pytest.raises(openai.PermissionDeniedError, match="may not use model 'other-task'") as caught:
        ask(app, OTHER)
    assert caught.value.status_code == 403 and caught.value.body["code"] == "model_not_allowed"
    with pytest.raises(openai.PermissionDeniedError, match=f"may not use model '{OTHER}@1'"):
        ask(app, f"{OTHER}@1")
    seen = {m.id for m in app.models.list()}
    assert f"{NAME}@1" in seen and not any(m.startswith(OTHER) for m in seen)
    with pytest.raises(openai.NotFoundError) as unknown:
        ask(app, f"{NAME}@canary")
    assert f"{NAME}@1" in str(unknown.value) and OTHER not in str(unknown.value)
    ops = client(handle, tokens["ops"])
    assert {f"{OTHER}@1", f"{NAME}@1"} <= {m.id for m in ops.models.list()}
    answered = ask(ops, OTHER)
    assert answered.model == f"{OTHER}@1"

    # The request log names the key behind each request, answered or refused, and never its token.
    handle.service.recorder.flush()
    config = guarded[0]
    with RequestLog(config.state_dir / "requests.db") as log:
        by_app = log.rows(api_key="support-app")
        by_ops = log.rows(api_key="ops")
    assert sum(r["outcome"] != "error" for r in by_app) == 3  # answered (the tiny model's answers may be refusals)
    assert {r["error_kind"] for r in by_app if r["outcome"] == "error"} == {"forbidden", "unknown_model"}
    assert any(r["request_id"] == answered.id and r["release_name"] == OTHER for r in by_ops)
    assert not any(r["api_key"] != "ops" for r in by_ops)
    stored = b"".join(p.read_bytes() for p in config.state_dir.glob("requests.db*"))
    assert not any(token.encode() in stored for token in tokens.values())


def test_a_revoked_key_is_refused_from_the_next_request(guarded) -> None:
    config, handle, _ = guarded
    with KeyStore(config.state_dir / "keys.db") as keys:
        _, token = keys.add("temporary")
    user = client(handle, token)
    assert ask(user).model == f"{NAME}@1"
    with KeyStore(config.state_dir / "keys.db") as keys:
        keys.revoke("temporary")
    with pytest.raises(openai.AuthenticationError, match="revoked"):
        ask(user)


def test_tokens_are_stored_only_as_their_sha256(guarded) -> None:
    config, _, tokens = guarded
    stored = b"".join(
        path.read_bytes() for path in config.state_dir.glob("keys.db*") if path.stat().st_size
    )  # the database and its write-ahead log
    for token in tokens.values():
        assert token.encode() not in stored and token[7:].encode() not in stored
        assert token_hash(token).encode() in stored
    assert stat.S_IMODE((config.state_dir / "keys.db").stat().st_mode) == 0o600


def test_keys_commands_print_the_token_once_and_never_list_it(tmp_path, tiny_model_dir, capsys) -> None:
    config = make_project(tmp_path / "project", tiny_model_dir)
    p = str(config.root)
    code, out, _ = run_cli(capsys, "serve", "keys", "add", "support-app", "--model", NAME, "-p", p)
    assert code == 0 and f"created key support-app for {NAME}" in out
    token = out.split("<token>'): ")[1].split()[0]
    assert token.startswith("slmkit-") and len(token) > 40
    code, out, _ = run_cli(capsys, "serve", "-p", p, "keys", "list")
    assert code == 0 and "support-app" in out and "active" in out and token not in out and token[:11] in out
    assert run_cli(capsys, "serve", "keys", "add", "support-app", "-p", p)[0] != 0  # one active key per name
    code, out, _ = run_cli(capsys, "serve", "keys", "revoke", "support-app", "-p", p)
    assert code == 0 and "revoked key support-app" in out
    assert "revoked" in run_cli(capsys, "serve", "keys", "list", "-p", p)[1]
    code, _, err = run_cli(capsys, "serve", "keys", "revoke", "support-app", "-p", p)
    assert code != 0 and "no active key named 'support-app'" in err and "keys list" in err


def test_an_open_api_on_a_network_interface_refuses_to_start(tmp_path, tiny_model_dir, adapters) -> None:
    config = make_project(tmp_path / "open", tiny_model_dir)
    release_adapter(config, adapters[0], tiny_model_dir)
    with pytest.raises(ServeError, match="without API keys") as caught:
        start_server(config, host="0.0.0.0")
    assert "slmkit serve keys add" in str(caught.value)
    required = make_project(tmp_path / "required", tiny_model_dir, **{"serve.require_keys": True})
    release_adapter(required, adapters[0], tiny_model_dir)
    with pytest.raises(ServeError, match="require_keys"):
        start_server(required)
    with KeyStore(config.state_dir / "keys.db") as keys:
        _, token = keys.add("lan-client")
    with start_server(config, host="0.0.0.0") as handle:  # with a key it starts, and asks for it
        with pytest.raises(openai.AuthenticationError, match="invalid API key"):
            ask(client(handle, "wrong"))
        assert ask(client(handle, token)).model == f"{NAME}@1"


def test_health_is_bare_liveness_without_a_key_and_the_details_with_one(guarded) -> None:
    _, handle, tokens = guarded

    def health(token: str | None = None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(handle.url.removesuffix("/v1") + "/health", headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())

    assert health() == (200, {"status": "ok"})  # a load balancer's probe needs no key
    assert health("slmkit-not-a-key") == (200, {"status": "ok"})
    status, details = health(tokens["support-app"])
    assert status == 200 and f"{NAME}@1" in details["loaded"] and details["engine"]["requests"] >= 0
