"""serve.engine: llama.cpp and vLLM as processes the gateway starts, watches and stops.

Each engine is driven through the real gateway with the official openai client. With
constrained decoding even a random model writes a schema-valid first answer, so these tests
see the engine's own answer, not the guard's refusal.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import pytest

from slmkit.errors import ServeError
from slmkit.registry import Registry
from slmkit.serve import start_server
from slmkit.serve.generator import decoding_schema
from slmkit.serve.processes import group_members
from slmkit.serve.releases import release_spec
from tests.serve.conftest import make_adapter, make_project, release_adapter

NAME = "support-tickets"
TICKET = {"subject": "Order never arrived", "body": "My order ORD-123456 has not arrived after two weeks."}
ANSWER_TOKENS = 64  # room for a whole JSON answer (about 35 tokens)
REPO = Path(__file__).resolve().parents[2]


def released_task(config, version: int = 1):
    registry = Registry(config.state_dir)
    try:
        return release_spec(registry.get_release(NAME, version)).task
    finally:
        registry.close()


def ask(client: openai.OpenAI, model: str = NAME, content: dict | str = TICKET):
    text = content if isinstance(content, str) else json.dumps(content)
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}])


def client_for(handle) -> openai.OpenAI:
    return openai.OpenAI(base_url=handle.url, api_key="x", max_retries=0, timeout=600)


def engine_pids(handle) -> list[int]:
    return [p["pid"] for p in handle.service.health()["backend"]["processes"] if p["alive"]]


def assert_gone(pids: list[int]) -> None:
    """No process is left in the process group of any engine process."""
    deadline = time.monotonic() + 15
    while any(group_members(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [m for pid in pids for m in group_members(pid)]


def private_socket(pid: int) -> Path:
    """The Unix socket an engine process group serves on (from its leader's command line)."""
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    flag = next(i for i, a in enumerate(argv) if a in (b"--socket", b"--uds"))
    return Path(argv[flag + 1].decode())


def tcp_listeners(pids: list[int]) -> list[tuple[str, str]]:
    """Of these process groups' members, (process name, local address) of each listening TCP socket (Linux /proc)."""
    listening = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                listening[fields[9]] = fields[1]
    found = []
    for member in (m for pid in pids for m in group_members(pid)):
        name = Path(f"/proc/{member}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        for fd in Path(f"/proc/{member}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:[") and target[8:-1] in listening:
                    found.append((name, listening[target[8:-1]]))
    return found


LOOPBACK = ("0100007F:", "00000000000000000000000001000000:")  # 127.0.0.1 and ::1 as /proc/net/tcp writes them


def raw_request(socket_path: Path, method: str, path: str, body: dict | None = None, token: str | None = None):
    """An HTTP request straight to an engine's socket, as another program on the machine would send it."""
    import http.client
    import socket as sockets

    connection = http.client.HTTPConnection("localhost", timeout=30)
    sock = sockets.socket(sockets.AF_UNIX, sockets.SOCK_STREAM)
    sock.connect(str(socket_path))
    connection.sock = sock
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    connection.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
    response = connection.getresponse()
    status, payload = response.status, response.read()
    connection.close()
    return status, payload


def test_decoding_schema_keeps_the_pattern_of_a_nullable_string() -> None:
    llama_grammar = pytest.importorskip("llama_cpp.llama_grammar")
    schema = {
        "type": "object",
        "properties": {"order_id": {"type": ["string", "null"], "pattern": "^ORD-[0-9]{6}$"}},
        "required": ["order_id"],
    }
    assert '"ORD"' not in llama_grammar.json_schema_to_gbnf(json.dumps(schema))  # dropped as given
    assert '"ORD"' in llama_grammar.json_schema_to_gbnf(json.dumps(decoding_schema(schema)))


# --- llama.cpp ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gguf_project(tmp_path_factory, tiny_model_dir, adapters):
    """Releases 1 and 2 of the tiny model, each exported to an f16 GGUF (recorded, unverified)."""
    pytest.importorskip("llama_cpp")
    from slmkit.train.export import run_export

    config = make_project(
        tmp_path_factory.mktemp("llamacpp"),
        tiny_model_dir,
        **{
            "serve.engine": "llamacpp",
            "serve.gguf_quant": "f16",
            "serve.max_new_tokens": ANSWER_TOKENS,
            "serve.constrained": True,
        },
    )
    for adapter in adapters:
        release = release_adapter(config, adapter, tiny_model_dir, alias="production")
        run_export(config, release.ref, fmt="gguf", quantizations=["f16"], verify=False, log=lambda _: None)
    return config


def test_llamacpp_engine_answers_within_the_schema_and_stops_with_the_gateway(gguf_project) -> None:
    config = gguf_project
    handle = start_server(config, port=0)
    try:
        client = client_for(handle)
        response = ask(client)
        content = response.choices[0].message.content
        assert released_task(config, 2).parse(content).valid
        extras = response.model_extra["slmkit"]
        # The grammar kept the random model's first answer valid: no retry, no refusal stand-in.
        assert extras["valid"] is True and extras["guard"] == {"replaced": False, "attempts": 1, "reason": None}
        assert response.model == extras["release"] == f"{NAME}@2"  # production, resolved by immutable version

        # A batch of concurrent requests reaches the worker at once.
        with ThreadPoolExecutor(12) as pool:
            batch = list(pool.map(lambda i: ask(client, content=f"My order ORD-00000{i % 10} is late."), range(12)))
        assert all(r.model_extra["slmkit"]["valid"] for r in batch)

        # Another version is another worker on its own GGUF, started on first use.
        older = ask(client, f"{NAME}@1")
        assert older.model == f"{NAME}@1" and older.model_extra["slmkit"]["valid"] is True
        processes = handle.service.health()["backend"]["processes"]
        assert {p["release"] for p in processes if p["alive"]} == {f"{NAME}@1", f"{NAME}@2"}
        pids = engine_pids(handle)
    finally:
        handle.stop()
    assert_gone(pids)


def test_llamacpp_worker_that_dies_is_restarted(gguf_project) -> None:
    with start_server(gguf_project, port=0) as handle:
        client = client_for(handle)
        (pid,) = engine_pids(handle)
        os.killpg(pid, signal.SIGKILL)
        assert_gone([pid])
        response = ask(client)  # the next request finds it dead and starts it again
        assert response.model_extra["slmkit"]["valid"] is True
        (process,) = handle.service.health()["backend"]["processes"]
        assert process["restarts"] == 1 and process["pid"] != pid and process["alive"]


def test_llamacpp_without_constraints_leaves_the_random_model_to_the_guard(gguf_project) -> None:
    config = gguf_project.model_copy(deep=True)
    config.serve.constrained = False
    with start_server(config, port=0) as handle:
        extras = ask(client_for(handle)).model_extra["slmkit"]
    assert extras["valid"] is False and extras["refused"] is True and extras["guard"]["replaced"] is True


@contextlib.contextmanager
def gateway_process(config):
    """`slmkit serve` in a process of its own, SIGKILLed at the end: yields its OpenAI base URL."""
    gateway = subprocess.Popen(
        [sys.executable, "-m", "slmkit.cli.main", "serve", "-p", str(config.root), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert gateway.stdout is not None
        url = None
        for line in gateway.stdout:
            if "OpenAI base URL:" in line:
                url = line.split("OpenAI base URL:")[1].split()[0]
                break
        assert url, "the gateway did not start"
        yield url
    finally:
        gateway.kill()  # SIGKILL gives the gateway no chance to stop anything
        gateway.wait(timeout=30)


def gateway_engines(url: str) -> list[int]:
    with urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=30) as response:
        processes = json.loads(response.read())["backend"]["processes"]  # details: this machine asks
    pids = [p["pid"] for p in processes if p["alive"]]
    assert pids and all(group_members(pid) for pid in pids)
    return pids


def test_a_gateway_killed_outright_takes_its_llamacpp_workers_with_it(gguf_project) -> None:
    """The lifeline under each worker sees the gateway's end of its pipe close and stops the group."""
    with gateway_process(gguf_project) as url:
        pids = gateway_engines(url)
    assert_gone(pids)


def test_llamacpp_workers_answer_only_the_gateway(gguf_project) -> None:
    with start_server(gguf_project, port=0) as handle:
        (pid,) = engine_pids(handle)
        where = private_socket(pid)
        assert stat.S_IMODE(where.parent.stat().st_mode) == 0o700  # no other user may even reach the socket
        assert tcp_listeners([pid]) == []  # and nothing listens on a TCP port
        ticket = {"prompt": "hello", "max_tokens": 4}
        assert raw_request(where, "POST", "/v1/completions", ticket)[0] == 401
        assert raw_request(where, "POST", "/v1/completions", ticket, token="guessed")[0] == 401
        assert raw_request(where, "GET", "/v1/models")[0] == 401
        assert raw_request(where, "GET", "/health") == (200, b'{"status": "ok"}')  # bare liveness only
        assert ask(client_for(handle)).model_extra["slmkit"]["valid"] is True  # the gateway holds the token


def test_an_engine_started_from_a_thread_that_ends_keeps_running(gguf_project) -> None:
    """The gateway starts engines from whatever thread asks first; that thread ending must not stop
    them (a parent-death signal set in preexec_fn fired when the forking *thread* exited)."""
    started = []
    opener = threading.Thread(target=lambda: started.append(start_server(gguf_project, port=0)))
    opener.start()
    opener.join()
    (handle,) = started
    try:
        (pid,) = engine_pids(handle)
        time.sleep(2)
        assert group_members(pid), "the engine died with the thread that started it"
        assert ask(client_for(handle)).model_extra["slmkit"]["valid"] is True
        (process,) = handle.service.health()["backend"]["processes"]
        assert process["pid"] == pid and process["restarts"] == 0
    finally:
        handle.stop()
    assert_gone([pid])


def test_a_request_given_up_stops_the_llamacpp_worker_decoding_it(gguf_project) -> None:
    config = gguf_project.model_copy(deep=True)
    long = 60_000
    config.serve.constrained = False
    config.serve.max_retries = 0
    config.serve.max_new_tokens = long
    config.serve.context_tokens = long + 1024
    config.serve.timeout_s = 1.0
    log_path = config.state_dir / "engines" / f"llamacpp-{NAME}-v2.log"
    with start_server(config, port=0) as handle:
        before = log_path.read_text().count("client gone")
        with pytest.raises(openai.InternalServerError, match=r"serve\.timeout_s"):
            ask(client_for(handle))
        deadline = time.monotonic() + 10
        while log_path.read_text().count("client gone") == before and time.monotonic() < deadline:
            time.sleep(0.2)
        lines = [line for line in log_path.read_text().splitlines() if "client gone" in line][before:]
    assert lines, "the worker went on decoding an answer nobody waits for"
    produced = int(lines[0].split("after ")[1].split(" tokens")[0])
    assert 0 < produced < long


def test_llamacpp_refuses_a_release_without_a_gguf_export(gguf_project) -> None:
    config = gguf_project.model_copy(deep=True)
    config.serve.gguf_quant = "q8_0"
    with pytest.raises(
        ServeError, match=r"(?s)has no GGUF export in q8_0.*slmkit export support-tickets@2 --format gguf --quant q8_0"
    ):
        start_server(config, port=0)


# --- vLLM ----------------------------------------------------------------------------------


def vllm_python() -> Path:
    """The vLLM virtualenv `make vllm` builds (or $SLMKIT_VLLM_PYTHON); the tests skip without one."""
    python = Path(os.environ.get("SLMKIT_VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")
    if not python.exists():
        pytest.skip(f"vLLM is not installed ({python} does not exist): run `make vllm`")
    return python


@pytest.fixture(scope="module")
def vllm_project(tmp_path_factory, smollm2_ref):
    """Two releases of random LoRA adapters on the real SmolLM2 (vLLM's CPU kernels need real head sizes)."""
    python = vllm_python()
    root = tmp_path_factory.mktemp("vllm")
    config = make_project(
        root / "project",
        "smollm2-135m-instruct",
        **{
            "serve.engine": "vllm",
            "serve.constrained": True,
            "serve.vllm_python": str(python),
            "serve.max_new_tokens": ANSWER_TOKENS,
            "serve.context_tokens": 1024,
        },
    )
    for seed in (1, 2):
        adapter = make_adapter(smollm2_ref.path, root / f"adapter-{seed}", seed=seed)
        release_adapter(config, adapter, smollm2_ref.path, alias="production" if seed == 1 else None)
    return config


@pytest.mark.slow
@pytest.mark.timeout(1200)  # vLLM starts in about a minute on two busy cores
def test_vllm_engine_serves_each_release_as_a_lora_module_and_stops_with_the_gateway(vllm_project) -> None:
    config = vllm_project
    handle = start_server(config, port=0)
    try:
        client = client_for(handle)
        response = ask(client)
        content = response.choices[0].message.content
        assert released_task(config).parse(content).valid
        extras = response.model_extra["slmkit"]
        assert extras["valid"] is True and extras["guard"]["attempts"] == 1  # structured outputs kept it valid
        assert response.model == extras["release"] == f"{NAME}@1"

        # Version 2 is loaded into the same vLLM process: one base model, two LoRA modules.
        other = ask(client, f"{NAME}@2")
        assert other.model == f"{NAME}@2" and other.model_extra["slmkit"]["valid"] is True
        (process,) = handle.service.health()["backend"]["processes"]
        assert process["alive"] and process["loras"] == [f"{NAME}@1", f"{NAME}@2"]
        pids = engine_pids(handle)
        assert len(group_members(pids[0])) > 1  # the API server and the engine core it forked
    finally:
        handle.stop()
    assert_gone(pids)


@pytest.mark.slow
@pytest.mark.timeout(1200)  # vLLM starts in about a minute on two busy cores
def test_a_gateway_killed_outright_takes_its_vllm_server_with_it(vllm_project) -> None:
    """vLLM answers only the gateway (a private socket; its own key on /v1), and dies with it."""
    with gateway_process(vllm_project) as url:
        (pid,) = gateway_engines(url)
        where = private_socket(pid)
        assert stat.S_IMODE(where.parent.stat().st_mode) == 0o700
        # The HTTP API listens on no TCP port. vLLM's worker keeps torch.distributed's own rendezvous
        # sockets (gloo, one process even at world size 1): loopback only, and never its API server's.
        listeners = tcp_listeners([pid])
        assert all(address.startswith(LOOPBACK) for _, address in listeners), listeners
        assert all(name.startswith("VLLM::Worker") for name, _ in listeners), listeners
        lora = {"lora_name": "intruder", "lora_path": str(where.parent)}
        assert raw_request(where, "POST", "/v1/load_lora_adapter", lora)[0] == 401
        assert raw_request(where, "POST", "/v1/completions", {"model": "x", "prompt": "hi"}, token="guessed")[0] == 401
        client = openai.OpenAI(base_url=url, api_key="x", max_retries=0, timeout=600)
        assert ask(client).model_extra["slmkit"]["valid"] is True  # the gateway holds the key
        members = group_members(pid)
        assert len(members) > 2  # the lifeline, the API server and the engine core it forked
    assert_gone([pid])
