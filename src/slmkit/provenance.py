"""Where a release came from, gathered for its record: every input's hash, the dataset's PII and
dedup summaries, the eval verdict, the code, the libraries and the machine.

The registry stores this dict as it is given and never imports torch; this module may (to name
a GPU), so it sits beside the pipeline that calls it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from slmkit import __version__
from slmkit.config import ProjectConfig
from slmkit.registry import Registry
from slmkit.registry.publish import Candidate

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
)
PEFT_KEYS = (
    "peft_type",
    "r",
    "lora_alpha",
    "lora_dropout",
    "use_dora",
    "use_rslora",
    "bias",
    "target_modules",
    "modules_to_save",
    "task_type",
    "peft_version",
)


def release_provenance(config: ProjectConfig, registry: Registry, candidate: Candidate) -> dict[str, Any]:
    """The provenance of releasing `candidate`, as a JSON-ready dict."""
    from slmkit.models.resolve import resolve_recorded
    from slmkit.train.checkpoint import library_versions

    run, report = candidate.run, candidate.report
    base = resolve_recorded(run.base_model, config.root, user=f"run {run.run_id}")
    adapter_dir = registry.store.path(candidate.adapter_digest)
    return {
        "adapter": {
            "digest": candidate.adapter_digest,
            "method": run.config.get("train", {}).get("method"),
            "peft": peft_settings(adapter_dir / "adapter_config.json"),
        },
        "base_model": {
            "model_id": base.model_id,
            "spec": base.spec,
            "sha256": base.sha256,
            "revision": base_revision(base.path),
            "source": base.source,
        },
        "tokenizer": {"sha256": tokenizer_hash(base.path)},
        "chat_template": {"sha256": report.get("chat_template_sha256")},
        "dataset": dataset_summary(registry, run.dataset_version),
        "gold_hash": candidate.evaluation.gold_hash,
        "eval": {
            "report_digest": candidate.evaluation.digest,
            "passed": candidate.evaluation.passed,
            "items": report.get("items"),
            "gates": report.get("gates", []),
            "metrics": {
                side: {name: m.get("value") for name, m in metrics.items()}
                for side, metrics in report.get("metrics", {}).items()
            },
            "decoding": report.get("decoding", {}),
            "engine": report.get("engine"),
        },
        "config_sha256": hashlib.sha256(json.dumps(run.config, sort_keys=True).encode()).hexdigest(),
        "code": code_version(config.root),
        "libraries": library_versions(),
        "training": _training_record(config.state_dir / "runs" / run.run_id / "run.json"),
        "hardware": hardware(),
    }


def peft_settings(path: Path) -> dict[str, Any] | None:
    """The adapter's shape from its adapter_config.json (None for fully fine-tuned weights)."""
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    settings = {k: data[k] for k in PEFT_KEYS if k in data}
    if isinstance(settings.get("target_modules"), list):
        settings["target_modules"] = sorted(settings["target_modules"])
    return settings


def base_revision(path: Path) -> str | None:
    """A hub snapshot's commit, or the hash of the GGUF a built-in model was converted from."""
    if path.parent.name == "snapshots":
        return path.name
    marker = path / "slmkit-model.json"
    if marker.exists():
        source = json.loads(marker.read_text()).get("source_sha256")
        return f"gguf sha256:{source}" if source else None
    return None


def tokenizer_hash(directory: Path) -> str | None:
    """sha256 over the tokenizer files present (names and contents), None when there are none."""
    found = [directory / name for name in TOKENIZER_FILES if (directory / name).is_file()]
    if not found:
        return None
    digest = hashlib.sha256()
    for path in found:
        digest.update(f"{path.name}\t{hashlib.sha256(path.read_bytes()).hexdigest()}\n".encode())
    return digest.hexdigest()


def dataset_summary(registry: Registry, version: str) -> dict[str, Any]:
    """The dataset version, its counts, and what its PII and dedup stages did (from report.json)."""
    record = registry.get_dataset(version)
    report_path = registry.store.path(record.digest) / "report.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else {}
    pii = report.get("pii") or {}
    duplicates = report.get("duplicates") or {}
    dedup_stages = {"exact dedup", "near dedup", "semantic dedup"}
    return {
        "version": version,
        "digest": record.digest,
        "counts": {k: record.counts.get(k) for k in ("input", "train", "validation", "gold", "rejected")},
        "pii": {
            "enabled": pii.get("enabled"),
            "entities": pii.get("entities"),
            "rows_with_pii": pii.get("rows_with_pii"),
            "by_type": pii.get("by_type"),
            "canaries": pii.get("canaries"),
        },
        "dedup": {
            "removed": {kind: stats.get("removed") for kind, stats in duplicates.items() if isinstance(stats, dict)},
            "stages": [s for s in report.get("stages", []) if s.get("stage") in dedup_stages],
            "conflict_rows": (report.get("conflicts") or {}).get("rows"),
        },
    }


def code_version(project_root: Path) -> dict[str, Any]:
    """slmkit's version, and the git commit of its source and of the project when they are checkouts."""
    import slmkit

    return {
        "slmkit": __version__,
        "slmkit_git": _git(Path(slmkit.__file__).resolve().parent),
        "project_git": _git(project_root),
    }


def _git(directory: Path) -> dict[str, Any] | None:
    def ask(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = ask("rev-parse", "HEAD")
    if not commit:
        return None
    status = ask("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": bool(status), "root": ask("rev-parse", "--show-toplevel")}


def hardware() -> dict[str, Any]:
    """This machine: CPU model and cores, memory, and the GPUs torch sees."""
    ram = None
    with contextlib.suppress(ValueError, OSError, AttributeError):
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return {
        "cpu": _cpu_model(),
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "ram_bytes": ram,
        "gpus": _gpus(),
        "os": platform.platform(),
    }


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _gpus() -> list[str]:
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def _training_record(run_json: Path) -> dict[str, Any] | None:
    """Libraries and hardware the adapter trained with, from its run.json (None when it is gone)."""
    if not run_json.exists():
        return None
    data = json.loads(run_json.read_text(encoding="utf-8"))
    return {"libraries": data.get("versions"), "hardware": data.get("hardware")}
