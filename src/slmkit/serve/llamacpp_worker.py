"""A llama.cpp worker: one GGUF behind a minimal OpenAI completions API, run as its own process.

    python -m slmkit.serve.llamacpp_worker --model FILE --port N [--name NAME] [--n-ctx 2048]

The gateway starts one per served release version (see serve/llamacpp.py). It answers
GET /health, GET /v1/models and POST /v1/completions with `prompt` as text or token ids,
`max_tokens`, `temperature`, `top_p`, `seed`, and `response_format` {"type": "json_schema",
"json_schema": {"schema": ...}} for decoding constrained by a GBNF grammar built from the
schema. One prompt per request; requests are decoded one at a time (llama.cpp's context is not
shared between threads), while /health answers at once. The stdlib HTTP server keeps the start
fast: no FastAPI, no torch.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

MAX_BODY_BYTES = 10_000_000


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

    def complete(self, body: dict[str, Any]) -> dict[str, Any]:
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
        with self.lock:
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
            )
        out["model"] = self.name
        return out


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the stdlib's 5 resets connections when a batch of requests arrives at once


def make_handler(worker: Worker) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self._send(200, {"status": "ok", "model": worker.name})
            elif self.path == "/v1/models":
                card = {"id": worker.name, "object": "model", "owned_by": "slmkit", "created": int(time.time())}
                self._send(200, {"object": "list", "data": [card]})
            else:
                self._error(404, f"no route {self.path}")

        def do_POST(self) -> None:
            if self.path != "/v1/completions":
                self._error(404, f"no route {self.path}")
                return
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY_BYTES:
                self._error(413, "request too large")
                return
            try:
                body = json.loads(self.rfile.read(length))
                self._send(200, {"id": f"cmpl-{uuid.uuid4().hex}", **worker.complete(body)})
            except (ValueError, KeyError, TypeError) as exc:
                self._error(400, str(exc))

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
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--n-ctx", type=int, default=2048, help="context window: prompt + answer tokens")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: half the cores)")
    args = parser.parse_args(argv)
    worker = Worker(args.model, name=args.name or args.model.stem, n_ctx=args.n_ctx, threads=args.threads)
    server = Server((args.host, args.port), make_handler(worker))
    print(f"llama.cpp worker: {args.model} as {worker.name} on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        worker.llm.close()


if __name__ == "__main__":
    main()
