"""Serving: an OpenAI-compatible gateway in front of released adapters, every answer guarded.

Layout (after vLLM's split): `protocol` (wire shapes), `service` (what a request does),
`app` (thin FastAPI routes), `engine` (the batching worker), `releases` (load and check a
release), `guard` (validate or replace an answer), `keys` (API keys, stored hashed), `metrics`
(Prometheus), `server` (run it). Importing this package
loads none of torch, transformers, FastAPI or uvicorn: `slmkit --help` stays instant.
"""

from slmkit.serve.server import ServerHandle, run_server, start_server

__all__ = ["ServerHandle", "run_server", "start_server"]
