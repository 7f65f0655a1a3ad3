"""What a retrain runs with and what identifies it: the config with its paired gate, the hashes, the lock.

A retrain is keyed by (dataset version, config hash, production release): the same data and
settings against the same release in production are trained once. Before the build, a cheaper
fingerprint of what the build reads (each source file's sha256, the reviewed items, the locked
gold set) lets an unchanged input stop at once, without building anything.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slmkit.config import ProjectConfig
from slmkit.data.build import with_reviewed_source
from slmkit.errors import StageError
from slmkit.registry import Registry, hash_file

LOCK_FILE = "retrain.lock"
ACTOR = "retrain"  # who the audit log names for everything a retrain does
# Settings that cannot change what a retrain trains or how it is judged.
_RUNTIME = {("data", "workers"), ("train", "threads"), ("train", "loggers"), ("eval", "batch_size")}


def retrain_config(config: ProjectConfig) -> ProjectConfig:
    """The config a retrain trains and evaluates with: eval.gates plus the paired gate against the
    release behind release.alias (monitor.retrain.regression_gate), unless the gates hold one already."""
    alias = config.release.alias
    gates = list(config.eval.gates)
    parsed = config.eval.parsed_gates()
    if not any(g.vs_alias == alias for g in parsed):
        gate = config.monitor.retrain.regression_gate
        if gate is None:
            metric = "label_accuracy" if config.task.label_field else "exact_match"
            gate = f"{metric} no_regression_vs {alias} margin 0.05"
        gates.append(gate)
    evaluation = config.eval.model_copy(update={"gates": gates})
    out = config.model_copy(update={"eval": evaluation})
    return out


def config_hash(config: ProjectConfig) -> str:
    """sha256 of the settings that shape the adapter and how it is judged (and of warm start)."""
    resolved = config.resolved()
    kept: dict[str, Any] = {k: resolved[k] for k in ("base_model", "task", "data", "train", "eval")}
    for section, key in _RUNTIME:
        kept[section].pop(key, None)
    kept["warm_start"] = config.monitor.retrain.warm_start
    kept["release_alias"] = config.release.alias
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()


def inputs_fingerprint(config: ProjectConfig, registry: Registry) -> str:
    """sha256 of what the data build would read: every source file (the reviewed items included) and
    the locked gold set."""
    reading = with_reviewed_source(config)
    parts = []
    for source in reading.data.sources:
        path = reading.resolve_path(source.path)
        parts.append(f"{source.path}={hash_file(path) if path.is_file() else 'missing'}")
    lock = registry.gold_lock(config.task.name)
    parts.append(f"gold={lock.gold_hash if lock else ''}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def retrain_key(dataset_version: str, config_hash: str, production: str) -> str:
    return hashlib.sha256(f"{dataset_version}\n{config_hash}\n{production}".encode()).hexdigest()


@contextmanager
def retrain_lock(state_dir: Path) -> Iterator[None]:
    """Held for the whole retrain: a second one, from cron or by hand, is refused at once.

    An flock: the kernel lets go of it when the process dies, SIGKILL included, so a killed retrain
    never leaves a stale lock behind. Who holds it is written in the file, for the refusal.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / LOCK_FILE
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise StageError(
                f"another retrain is running ({holder}); nothing was started",
                hint="wait for it to finish (it holds .slmkit/retrain.lock), or stop it first",
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            stamp = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
            handle.write(f"pid {os.getpid()} since {stamp}")
            handle.flush()
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
