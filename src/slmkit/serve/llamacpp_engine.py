"""The llama.cpp engine: one worker process per release version, on that release's GGUF export.

A release is served from the GGUF `slmkit export --format gguf` wrote and recorded (base +
adapter merged, checked on the gold set), in the quantization serve.gguf_quant names, read from
the registry's store after checking its bytes. Each file runs in its own
`slmkit.serve.llamacpp_worker` process (llama.cpp holds one model per context), started on
first use and stopped when the release leaves the model cache or the gateway stops. Decoding is
constrained to the task's JSON schema by a GBNF grammar built from it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from slmkit.config import ServeConfig
from slmkit.errors import ServeError
from slmkit.registry import Registry, Release
from slmkit.serve.generator import CompletionsGenerator, Generator, decoding_schema
from slmkit.serve.llamacpp_worker import TOKEN_ENV
from slmkit.serve.processes import EngineProcess
from slmkit.serve.releases import CheckedRelease

START_TIMEOUT_S = 120.0


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    """The worker's (OpenAI-style) request field for decoding constrained to a JSON schema."""
    return {
        "response_format": {"type": "json_schema", "json_schema": {"name": "output", "schema": decoding_schema(schema)}}
    }


def release_gguf(state_dir: Path, release: Release, quant: str) -> Path:
    """The stored GGUF export of this release version in `quant`, its bytes checked; ServeError if none."""
    registry = Registry(state_dir)
    try:
        exports = [
            e
            for e in registry.list_exports(release.name)
            if e.meta.get("version") == release.version
            and e.meta.get("format") == "gguf"
            and e.meta.get("quantization") == quant
            and e.meta.get("adapter_digest") == release.adapter_digest
        ]
        if not exports:
            raise ServeError(
                f"{release.ref} has no GGUF export in {quant} to serve with llama.cpp",
                hint=f"run `slmkit export {release.ref} --format gguf --quant {quant}` (or set serve.gguf_quant)",
            )
        latest = exports[-1]
        problems = registry.store.verify(latest.digest)
        if problems:
            raise ServeError(
                f"{release.ref}: its {quant} GGUF export {'; '.join(problems)}",
                hint=f"export it again: `slmkit export {release.ref} --format gguf --quant {quant}`",
            )
        return registry.store.path(latest.digest)
    finally:
        registry.close()


class LlamaCppBackend:
    """A llama.cpp worker process per open release; the model cache closes (stops) evicted ones."""

    name = "llamacpp"

    def __init__(self, serve: ServeConfig, state_dir: Path) -> None:
        self.serve = serve
        self.state_dir = state_dir
        self.processes: dict[str, EngineProcess] = {}  # release ref -> its worker

    def open(self, checked: CheckedRelease) -> Generator:
        from slmkit.models.gguf_export import require_llama_cpp

        require_llama_cpp()
        release = checked.release
        gguf = release_gguf(self.state_dir, release, self.serve.gguf_quant)
        argv = [
            sys.executable,
            "-m",
            "slmkit.serve.llamacpp_worker",
            "--model",
            str(gguf),
            "--name",
            release.ref,
            "--n-ctx",
            str(self.serve.context_tokens),
        ]
        if self.serve.engine_threads:
            argv += ["--threads", str(self.serve.engine_threads)]
        old = self.processes.pop(release.ref, None)
        if old is not None:
            old.stop()
        process = EngineProcess(
            f"llama.cpp ({release.ref}, {self.serve.gguf_quant})",
            argv,
            socket_args=("--socket", "{socket}"),
            token_env=TOKEN_ENV,
            log_path=self.state_dir / "engines" / f"llamacpp-{release.name}-v{release.version}.log",
            start_timeout_s=START_TIMEOUT_S,
        )
        process.start()
        self.processes[release.ref] = process
        return CompletionsGenerator(
            process, release.ref, checked.tokenizer, structured=response_format, owns_process=True
        )

    def health(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "processes": [
                {"release": ref, "pid": p.pid, "alive": p.alive(), "restarts": p.restarts}
                for ref, p in self.processes.items()
                if p.pid is not None
            ],
        }

    def close(self) -> None:
        for process in self.processes.values():
            process.stop()
        self.processes.clear()
