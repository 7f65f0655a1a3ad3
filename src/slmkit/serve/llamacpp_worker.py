"""A llama.cpp worker: one GGUF behind a minimal OpenAI completions API, run as its own process.

    SLMKIT_ENGINE_TOKEN=... python -m slmkit.serve.llamacpp_worker --model FILE --socket PATH [--name NAME]

The gateway starts one per served release version (see serve/llamacpp_engine.py), on a Unix
socket in a private folder (`--port N` serves TCP on 127.0.0.1 instead, for trying it by hand).
Every route but GET /health needs `Authorization: Bearer $SLMKIT_ENGINE_TOKEN` when that
variable is set. It answers GET /health, GET /v1/models and POST /v1/completions with `prompt`
as text or token ids, `max_tokens`, `temperature`, `top_p`, `seed`, and `response_format`
{"type": "json_schema", "json_schema": {"schema": ...}} for decoding constrained by a GBNF
grammar built from the schema. One prompt per request; requests are decoded one at a time
(llama.cpp's context is not shared between threads), while /health answers at once. A request
whose client hangs up is dropped, or stopped at the next token if it is being decoded. The stdlib
HTTP server keeps the start fast: no FastAPI, no torch.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import select
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY_BYTES = 10_000_000
TOKEN_ENV = "SLMKIT_ENGINE_TOKEN"


class ClientGone(Exception):
    """The client hung up before its answer was decoded."""


class Worker:
    def __init__(self, model_path: Path, *, name: str, n_ctx: int, threads: int | None) -> None:
        from slmkit.models.gguf_export import open_gguf

        self.name = name
        self.llm = open_gguf(model_path, n_ctx=n_ctx, threads=threads)
        self.lock = threading.Lock()
        self.grammars: dict[str, Any] = {}  # schema JSON -> compiled grammar

    def grammar(self, schema: dict[str, Any]) -> Any:
        from llama_cpp import LlamaGrammar

        key = json.dumps(schema, sort_keys=True)
        if key not in self.grammars:
            self.grammars[key] = LlamaGrammar.from_json_schema(key, verbose=False)
        return self.grammars[key]

    def complete(self, body: dict[str, Any], gone: Callable[[], bool] = lambda: False) -> dict[str, Any]:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and prompt and isinstance(prompt[0], list):
            if len(prompt) != 1:
                raise ValueError("one prompt per request")
            prompt = prompt[0]
        if not isinstance(prompt, (str, list)) or not prompt:
            raise ValueError("prompt must be a non-empty string or a list of token ids")
        if isinstance(prompt, str):  # as rendered by a chat template: special tokens parsed, no BOS added
            prompt = self.llm.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)
        grammar = None
        response_format = body.get("response_format") or {}
        if response_format.get("type") == "json_schema":
            grammar = self.grammar(response_format["json_schema"]["schema"])
        temperature = float(body.get("temperature", 1.0))
        from llama_cpp import StoppingCriteriaList

        produced = [0]

        def stop(ids: Any, logits: Any) -> bool:
            produced[0] += 1
            return gone()

        with self.lock:
            if gone():  # it waited its turn and nobody is waiting for it any more
                raise ClientGone("before decoding")
            out = self.llm.create_completion(
                prompt=[int(t) for t in prompt],
                max_tokens=int(body.get("max_tokens", 16)),
                temperature=temperature,
                top_p=float(body.get("top_p", 1.0)),
                top_k=0,  # no top-k cut: sampling as transformers' generate does with top_k=0
                min_p=0.0,
                repeat_penalty=1.0,
                seed=body.get("seed"),
                grammar=grammar,
                stopping_criteria=StoppingCriteriaList([stop]),
            )
        if gone():
            raise ClientGone(f"after {produced[0]} tokens")
        out["model"] = self.name
        return out


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the stdlib's 5 resets connections when a batch of requests arrives at once


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128

    def get_request(self) -> tuple[Any, Any]:
        connection, _ = super().get_request()
        return connection, ("unix", 0)  # BaseHTTPRequestHandler expects a (host, port) address


def make_handler(worker: Worker, token: str | None = None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, {"status": "ok"})
            elif not self._authorized():
                return
            elif self.path == "/v1/models":
                card = {"id": worker.name, "object": "model", "owned_by": "slmkit", "created": int(time.time())}
                self._send(200, {"object": "list", "data": [card]})
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY_BYTES:
                self._error(413, "request too large")
                self.close_connection = True
                return
            raw = self.rfile.read(length)  # read before answering, so the client is not cut off mid-send
            if not self._authorized():
                return
            if self.path != "/v1/completions":
                self._error(404, f"no route {self.path}")
                return
            try:
                body = json.loads(raw)
                self._send(200, {"id": f"cmpl-{uuid.uuid4().hex}", **worker.complete(body, self._client_gone)})
            except ClientGone as exc:
                print(f"client gone: request dropped {exc}", flush=True)
                self.close_connection = True
            except (ValueError, KeyError, TypeError) as exc:
                self._error(400, str(exc))

        def _authorized(self) -> bool:
            if token is None:
                return True
            scheme, _, given = (self.headers.get("authorization") or "").partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode()):
                return True
            self._send(401, {"error": {"message": "unauthorized", "type": "invalid_request_error"}})
            return False

        def _client_gone(self) -> bool:
            """The client closed its end: readable, with nothing left to read."""
            try:
                readable, _, _ = select.select([self.connection], [], [], 0)
                return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
            except OSError:
                return True

        def _error(self, status: int, message: str) -> None:
            self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True, help="the GGUF file")
    parser.add_argument("--name", default=None, help="the model name in responses (default: the file's stem)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", type=Path, help="serve on this Unix socket (what the gateway does)")
    where.add_argument("--port", type=int, help="serve on this TCP port of --host instead")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--n-ctx", type=int, default=2048, help="context window: prompt + answer tokens")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: half the cores)")
    args = parser.parse_args(argv)
    token = os.environ.get(TOKEN_ENV) or None
    worker = Worker(args.model, name=args.name or args.model.stem, n_ctx=args.n_ctx, threads=args.threads)
    server: socketserver.BaseServer
    if args.socket is not None:
        server = UnixServer(str(args.socket), make_handler(worker, token))
        where_text = f"unix:{args.socket}"
    else:
        server = Server((args.host, args.port), make_handler(worker, token))
        where_text = f"http://{args.host}:{args.port}"
    print(f"llama.cpp worker: {args.model} as {worker.name} on {where_text}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        worker.llm.close()


if __name__ == "__main__":
    main()
