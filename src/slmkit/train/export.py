"""`slmkit export`: a release as files other engines load, each checked on the gold set and recorded.

- peft: the adapter as PEFT saved it (adapter_config.json + adapter_model.safetensors), for
  `PeftModel.from_pretrained` and vLLM's `--lora-modules`;
- merged: base + adapter folded into one transformers directory (merge.py), for transformers
  and vLLM without PEFT;
- gguf: that merged model as a llama.cpp / Ollama file, in f16 and quantized (q8_0, q4_k_m).

An export is worth what its answers are: each one answers the locked gold set greedily and is
compared with the release it came from (base + adapter, unmerged, float32): the agreement is
the share of gold items whose answers parse to the same JSON. Each file is then stored in the
registry's object store and recorded with that check, so `Registry.verify()` catches a file
altered afterwards; a copy goes to the output directory with an exports.json index.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from slmkit import atomic
from slmkit.config import ProjectConfig
from slmkit.errors import RegistryError, StageError
from slmkit.models import BaseModelRef, load_model, load_tokenizer
from slmkit.models.generate import generate
from slmkit.models.gguf_export import (
    FLOAT_TYPES,
    QUANT_TYPES,
    gguf_answers,
    quantize_gguf,
    require_llama_cpp,
    source_gguf_path,
    source_gguf_pre_tokenizer,
    write_gguf,
)
from slmkit.models.load import is_full_weights
from slmkit.registry import Registry
from slmkit.registry.records import Release
from slmkit.train.checkpoint import library_versions
from slmkit.train.merge import GoldPrompts, gold_prompts, merge_adapter, run_base_model, same_parse

ExportFormat = Literal["peft", "merged", "gguf"]
FORMATS: dict[str, tuple[str, ...]] = {  # format -> the quantizations it offers, default first
    "peft": ("none",),
    "merged": ("f32", "bf16"),
    "gguf": ("f16", "q8_0", "q4_k_m", "f32"),
}
DEFAULT_QUANTIZATIONS = {"peft": ["none"], "merged": ["f32"], "gguf": ["f16", "q8_0", "q4_k_m"]}
LOSSLESS = {("peft", "none"), ("merged", "f32")}  # these must answer exactly like the release
MANIFEST = "slmkit-export.json"  # in an exported directory, written last
INDEX = "exports.json"  # in the output directory: every export written there, with its check
SHOWN_DISAGREEMENTS = 5


@dataclass
class Exported:
    format: str
    quantization: str
    path: Path  # the copy in the output directory
    digest: str  # the stored object
    size: int
    build_seconds: float
    check: dict[str, Any] | None  # None with --no-verify

    @property
    def agreement(self) -> float | None:
        return None if self.check is None else self.check["agreement"]

    @property
    def lossless(self) -> bool:
        return (self.format, self.quantization) in LOSSLESS


@dataclass
class ExportResult:
    release: str  # name@version
    out_dir: Path
    exports: list[Exported]
    reference: dict[str, Any] | None  # the unexported release's answers: items, valid, seconds

    @property
    def inconsistent(self) -> list[Exported]:
        """Lossless exports (peft, merged f32) that did not answer exactly like the release."""
        return [e for e in self.exports if e.lossless and e.check is not None and e.check["agreement"] < 1.0]

    def summary_lines(self) -> list[str]:
        lines = [f"exported {self.release} to {self.out_dir}"]
        if self.reference is not None:
            r = self.reference
            lines.append(
                f"reference: base + adapter (unexported), {r['items']} gold items, "
                f"{r['valid']}/{r['items']} schema-valid, {r['seconds']:.0f}s"
            )
        lines.append(f"{'format':<8}{'quant':<8}{'file':<40}{'size':>10}{'agreement':>11}{'valid':>8}{'seconds':>9}")
        for e in self.exports:
            c = e.check
            agreement = f"{c['agreement']:.1%}" if c else "-"
            valid = f"{c['valid']}/{c['items']}" if c else "-"
            seconds = e.build_seconds + (c["seconds"] if c else 0.0)
            lines.append(
                f"{e.format:<8}{e.quantization:<8}{e.path.name:<40}{_size(e.size):>10}{agreement:>11}{valid:>8}"
                f"{seconds:>9.0f}"
            )
        for e in self.exports:
            for d in (e.check or {}).get("disagreements", []):
                lines.append(
                    f"  {e.path.name} differs on {d['id']}: adapter {d['adapter'][:50]!r} / export {d['export'][:50]!r}"
                )
        return lines


def run_export(
    config: ProjectConfig,
    release: str | None = None,
    *,
    fmt: ExportFormat,
    quantizations: list[str] | None = None,
    out_dir: Path | None = None,
    limit: int | None = None,
    verify: bool = True,
    registry: Registry | None = None,
    log: Callable[[str], None] = print,
) -> ExportResult:
    """Export a release (default: the task's release alias) in one format, check and record each file.

    `release` is `name`, `name@3` or `name@alias`. `out_dir` defaults to
    exports/<name>-v<version> in the project. `limit` is the number of gold items checked
    (default: export.verify_items).
    """
    registry = registry or Registry(config.state_dir)
    rel = registry.resolve(release or config.task.name, default_alias=config.release.alias)
    quants = _quantizations(fmt, quantizations)
    if fmt == "gguf" and (verify or any(q in QUANT_TYPES for q in quants)):
        require_llama_cpp()
    problems = registry.store.verify(rel.adapter_digest)
    if problems:
        raise RegistryError(f"cannot export {rel.ref}: " + "; ".join(problems), hint="release a run again")
    adapter_dir = registry.store.path(rel.adapter_digest)
    if fmt == "peft" and is_full_weights(adapter_dir):
        raise StageError(
            f"{rel.ref} was fully fine-tuned: there is no PEFT adapter to export",
            hint="export --format merged or --format gguf",
        )
    base = run_base_model(config, rel.run_id, rel.base_model)
    target = Path(out_dir) if out_dir is not None else config.root / "exports" / f"{rel.name}-v{rel.version}"
    names = {q: _file_name(rel, fmt, q) for q in quants}
    for name in names.values():
        _check_writable(target / name)
    _read_index(target / INDEX)  # refused now, not after the build

    with tempfile.TemporaryDirectory(prefix="slmkit-export-") as scratch_dir:
        scratch = Path(scratch_dir)
        log(f"building {fmt} ({', '.join(quants)}) of {rel.ref}")
        built = _build(config, rel, fmt, quants, base, adapter_dir, scratch, names)
        gold = reference = None
        if verify:
            gold = gold_prompts(config, registry, rel.run_id, limit or config.export.verify_items)
            reference = _reference_answers(gold, config)
            log(f"  reference (base + adapter): {len(gold.prompts)} gold items in {reference['seconds']:.1f}s")
        exports = []
        for quant, (path, seconds) in built.items():
            check = None
            if gold is not None and reference is not None:
                check = _check(config, fmt, quant, path, gold, reference)
                log(f"  {path.name}: agreement {check['agreement']:.1%} in {check['seconds']:.1f}s")
            exports.append(_record(registry, rel, fmt, quant, path, seconds, check, target))
    _write_index(target, exports, rel)
    summary = None if reference is None else {k: reference[k] for k in ("items", "valid", "seconds")}
    return ExportResult(rel.ref, target, exports, summary)


def _quantizations(fmt: str, asked: list[str] | None) -> list[str]:
    if fmt not in FORMATS:
        raise StageError(f"unknown export format {fmt!r}", hint=f"choose one of {', '.join(FORMATS)}")
    quants = [q.strip().lower() for q in asked if q.strip()] if asked else DEFAULT_QUANTIZATIONS[fmt]
    wrong = [q for q in quants if q not in FORMATS[fmt]]
    if wrong or not quants:
        raise StageError(
            f"--quant {','.join(wrong) or '(empty)'} is not offered for --format {fmt}",
            hint=f"{fmt} offers: {', '.join(FORMATS[fmt])}",
        )
    return list(dict.fromkeys(quants))


def _file_name(rel: Release, fmt: str, quant: str) -> str:
    stem = f"{rel.name}-v{rel.version}"
    if fmt == "gguf":
        return f"{stem}-{quant}.gguf"
    return f"{stem}-{fmt}" if quant in ("none", "f32") else f"{stem}-{fmt}-{quant}"


def _check_writable(path: Path) -> None:
    """An existing directory is replaced only when it is an export slmkit wrote."""
    if path.is_dir() and any(path.iterdir()) and not (path / MANIFEST).exists():
        raise StageError(
            f"{path} exists and is not an export written by slmkit; refusing to overwrite it",
            hint="choose another --out directory, or remove this one",
        )


# --- building ---------------------------------------------------------------------------


def _build(
    config: ProjectConfig,
    rel: Release,
    fmt: str,
    quants: list[str],
    base: BaseModelRef,
    adapter_dir: Path,
    scratch: Path,
    names: dict[str, str],
) -> dict[str, tuple[Path, float]]:
    """Each asked quantization's file or directory in `scratch`, with the seconds it took."""
    built: dict[str, tuple[Path, float]] = {}
    if fmt == "peft":
        began = time.perf_counter()
        out = scratch / names["none"]
        shutil.copytree(adapter_dir, out)
        _write_manifest(out, rel, base, "peft", "none")
        return {"none": (out, time.perf_counter() - began)}
    if fmt == "merged":
        for quant in quants:
            began = time.perf_counter()
            out = merge_adapter(base, adapter_dir, scratch / names[quant], "bfloat16" if quant == "bf16" else "float32")
            _write_manifest(out, rel, base, "merged", quant)
            built[quant] = (out, time.perf_counter() - began)
        return built

    began = time.perf_counter()
    merged = merge_adapter(base, adapter_dir, scratch / "merged", "float32")
    settings: dict[str, Any] = {
        "pre_tokenizer": config.export.gguf_pre_tokenizer or source_gguf_pre_tokenizer(base.path),
        "name": f"{rel.name}-v{rel.version}",
        "source_gguf": source_gguf_path(base.path),  # a Gemma 3 file's tokenizer comes from it
    }
    # Quantized files are made from the f32 file when one is asked for, else from f16.
    source_type = "f32" if "f32" in quants else "f16"
    source = write_gguf(
        merged, scratch / names.get(source_type, f"source-{source_type}.gguf"), dtype=source_type, **settings
    )
    merge_seconds = time.perf_counter() - began
    for quant in quants:
        began = time.perf_counter()
        if quant == source_type:
            built[quant] = (source, merge_seconds)
        elif quant in FLOAT_TYPES:
            path = write_gguf(merged, scratch / names[quant], dtype=quant, **settings)
            built[quant] = (path, merge_seconds + time.perf_counter() - began)
        else:
            path = quantize_gguf(source, scratch / names[quant], quant, threads=config.export.threads)
            built[quant] = (path, merge_seconds + time.perf_counter() - began)
    return built


def _write_manifest(out: Path, rel: Release, base: BaseModelRef, fmt: str, quant: str) -> None:
    manifest = {
        "kind": "slmkit.export",
        "release": rel.name,
        "version": rel.version,
        "format": fmt,
        "quantization": quant,
        "base_model": base.record(),
        "adapter_digest": rel.adapter_digest,
        "versions": library_versions(),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))


# --- checking ---------------------------------------------------------------------------


def _reference_answers(gold: GoldPrompts, config: ProjectConfig) -> dict[str, Any]:
    """The unexported release's greedy answers: base + adapter kept apart, float32, as eval decodes."""
    began = time.perf_counter()
    model = load_model(gold.base, adapter=gold.adapter_dir, merge=False, dtype="float32")
    # The transformers model under the PEFT wrapper, LoRA layers in place (see verify_merge).
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    texts = _transformers_answers(inner, gold.tokenizer, gold.prompts, config)
    valid = sum(gold.task.parse(t).valid for t in texts)
    return {"texts": texts, "items": len(texts), "valid": valid, "seconds": round(time.perf_counter() - began, 2)}


def _check(
    config: ProjectConfig, fmt: str, quant: str, path: Path, gold: GoldPrompts, reference: dict[str, Any]
) -> dict[str, Any]:
    """The export's greedy answers on the same gold items, compared with the reference's."""
    began = time.perf_counter()
    extra: dict[str, Any] = {}
    if fmt == "peft":
        model = load_model(gold.base, adapter=path, merge=False, dtype="float32")  # PeftModel.from_pretrained
        texts = _transformers_answers(model.get_base_model(), gold.tokenizer, gold.prompts, config)
    elif fmt == "merged":
        ref = BaseModelRef(str(path), f"{gold.base.model_id} (merged)", path, "", "export")
        tokenizer = load_tokenizer(ref)
        # Rendered with the exported directory's own tokenizer and chat template, as a user would.
        prompts = [gold.task.prompt_text(tokenizer, text, history) for text, history in gold.inputs]
        extra["prompts_identical"] = prompts == gold.prompts
        model = load_model(ref, dtype="bfloat16" if quant == "bf16" else "float32")
        texts = _transformers_answers(model, tokenizer, prompts, config)
    else:
        answers = gguf_answers(
            path, gold.prompts, max_new_tokens=config.eval.max_new_tokens, threads=config.export.threads
        )
        texts = [a.text for a in answers]
        # Tokenizer metadata written wrong shows up here first: llama.cpp splits the prompt differently.
        extra["prompt_tokens_identical"] = sum(
            a.prompt_ids == gold.tokenizer(p, add_special_tokens=False)["input_ids"]
            for a, p in zip(answers, gold.prompts, strict=True)
        )
    seconds = time.perf_counter() - began
    ref_texts = reference["texts"]
    same_json = [same_parse(gold.task, a, b) for a, b in zip(ref_texts, texts, strict=True)]
    n = len(texts)
    return {
        "items": n,
        "agreement": round(sum(same_json) / n, 6) if n else 0.0,
        "identical_json": sum(same_json),
        "identical_text": sum(a == b for a, b in zip(ref_texts, texts, strict=True)),
        "valid": sum(gold.task.parse(t).valid for t in texts),
        "reference_valid": reference["valid"],
        **extra,
        "seconds": round(seconds, 2),
        "disagreements": [
            {"id": gold.ids[i], "adapter": ref_texts[i], "export": texts[i]} for i in range(n) if not same_json[i]
        ][:SHOWN_DISAGREEMENTS],
        "dataset_version": gold.dataset_version,
        "gold_hash": gold.gold_hash,
        "max_new_tokens": config.eval.max_new_tokens,
    }


def _transformers_answers(model: Any, tokenizer: Any, prompts: list[str], config: ProjectConfig) -> list[str]:
    e = config.eval
    outputs = generate(model, tokenizer, prompts, max_new_tokens=e.max_new_tokens, batch_size=e.batch_size)
    return [o.text for o in outputs]


# --- recording --------------------------------------------------------------------------


def _record(
    registry: Registry,
    rel: Release,
    fmt: str,
    quant: str,
    path: Path,
    build_seconds: float,
    check: dict[str, Any] | None,
    target: Path,
) -> Exported:
    """Store the export, record it with its check, and copy it into the output directory."""
    digest = registry.store.put_dir(path) if path.is_dir() else registry.store.put_file(path)
    size = registry.store.size(digest)
    meta = {
        "release": rel.name,
        "version": rel.version,
        "format": fmt,
        "quantization": quant,
        "file": path.name,
        "verified": check is not None,
        "agreement": None if check is None else check["agreement"],
        "items": None if check is None else check["items"],
        "valid": None if check is None else check["valid"],
        "seconds": {"build": round(build_seconds, 2), "check": None if check is None else check["seconds"]},
        "adapter_digest": rel.adapter_digest,
        "base_model_sha256": rel.base_model.get("sha256"),
        "check": check,
        "versions": _versions(),
    }
    registry.record_export(digest, size, rel.name, meta)
    copy = _copy_out(path, target / path.name)  # the bytes that were checked
    return Exported(fmt, quant, copy, digest, size, build_seconds, check)


def _copy_out(source: Path, dest: Path) -> Path:
    """Copy a file or directory to `dest` through a temporary name, replacing an earlier export there
    in one step: a crash at any instant leaves `dest` whole, the old export or the new one."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp-{secrets.token_hex(4)}")
    try:
        if source.is_dir():
            shutil.copytree(source, tmp)
            for file in tmp.rglob("*"):
                if file.is_file():
                    with open(file, "rb") as fh:
                        os.fsync(fh.fileno())
            atomic.replace_dir(tmp, dest)
        else:
            shutil.copyfile(source, tmp)
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, dest)
            atomic.fsync_dir(dest.parent)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return dest


def _write_index(target: Path, exports: list[Exported], rel: Release) -> None:
    """exports.json in the output directory, keyed by file name; earlier entries are kept.

    Read, updated and written under a lock, so two exports into one directory both land.
    """
    path = target / INDEX
    with atomic.locked(target / f".{INDEX}.lock"):
        index = _read_index(path)
        for e in exports:
            index[e.path.name] = {
                "release": rel.ref,
                "format": e.format,
                "quantization": e.quantization,
                "sha256": e.digest,
                "size": e.size,
                "build_seconds": round(e.build_seconds, 2),
                "check": e.check,
            }
        atomic.write_json(path, index, ensure_ascii=False)


def _read_index(path: Path) -> dict[str, Any]:
    """The export index, {} when there is none yet; one that cannot be read is an error, never
    silently replaced by an empty one (that would drop every earlier entry)."""
    if not path.exists():
        return {}
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
        problem = None if isinstance(index, dict) else f"it holds a JSON {type(index).__name__}"
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problem = str(exc)
    if problem is not None:
        raise StageError(
            f"{path} is not a readable export index (a JSON object keyed by file name): {problem}",
            hint="repair it or move it aside, then export again; every export is also recorded in the registry "
            "(`slmkit releases show`)",
        )
    return index


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = library_versions()
    for name in ("gguf", "llama_cpp_python"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[name] = md.version(name)
    return versions


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = n / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
