"""`slmkit train`: one readable SFT recipe. Setup -> train -> save -> report.

LoRA (or DoRA) through PEFT on a frozen base, loss on the answer tokens only, validation loss
every `eval_every` steps, and the adapter from the step with the best validation loss.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slmkit import __version__
from slmkit.config import ProjectConfig
from slmkit.data import open_dataset
from slmkit.errors import StageError
from slmkit.models import load_model, load_tokenizer, resolve_base_model
from slmkit.models.precision import autocast, resolve_precision
from slmkit.registry import Registry
from slmkit.task import Task
from slmkit.train.batches import (
    Encoded,
    collate,
    encode_example,
    iterate_steps,
    length_grouped_batches,
    shared_prefix_length,
)
from slmkit.train.loss import answer_loss


@dataclass
class TrainResult:
    run_id: str
    run_dir: Path
    adapter_dir: Path
    adapter_digest: str
    dataset_version: str
    metrics: dict[str, Any] = field(default_factory=dict)

    def summary_lines(self) -> list[str]:
        m = self.metrics
        return [
            f"run {self.run_id}: {m['steps']} steps, {m['train_examples']} examples, "
            f"{m['tokens']:,} tokens in {m['seconds']:.0f}s ({m['tokens_per_s']:.0f} tokens/s, {m['precision']})",
            f"validation loss {m['initial_val_loss']:.3f} -> {m['best_val_loss']:.3f} (best at step "
            f"{m['best_step']}); final train loss {m['final_train_loss']:.3f}",
            f"adapter sha256:{self.adapter_digest[:12]} in {self.adapter_dir}",
        ]


def run_train(
    config: ProjectConfig,
    *,
    registry: Registry | None = None,
    dataset_version: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train an adapter on the latest (or given) dataset version and record the run."""
    import torch
    from peft import LoraConfig, get_peft_model

    cfg = config.train
    registry = registry or Registry(config.state_dir)
    dataset = open_dataset(config, registry, dataset_version)
    task = Task.from_config(config)
    _seed_everything(cfg.seed)
    torch.set_num_threads(cfg.threads or os.cpu_count() or 1)

    base = resolve_base_model(config.base_model, config.root)
    tokenizer = load_tokenizer(base, padding_side="right")
    train_rows = dataset.examples("train")
    if not train_rows:
        raise StageError(f"dataset {dataset.version} has no training rows", hint="add data and run `slmkit data build`")

    def encode(rows: list[Any]) -> list[Encoded]:
        return [encode_example(task, tokenizer, r.input, r.output, cfg.max_seq_len, r.history) for r in rows]

    train_set = encode(train_rows)
    val_set = encode(dataset.examples("validation")[: cfg.max_validation_rows])
    truncated = sum(e.truncated for e in train_set)
    if truncated:
        log(
            f"warning: {truncated} training examples exceed max_seq_len={cfg.max_seq_len}; "
            "their earlier turns, then the end of their input, were cut (system prompt and answers kept whole)"
        )

    run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    run_dir = config.state_dir / "runs" / run_id
    run_dir.mkdir(parents=True)
    resolved = config.resolved()
    (run_dir / "config.json").write_text(json.dumps(resolved, indent=2))
    registry.start_run(run_id, task.name, dataset.version, base.record(), resolved)

    try:
        model = load_model(base)
        peft_config = LoraConfig(
            r=cfg.lora.r,
            lora_alpha=cfg.lora.alpha,
            lora_dropout=cfg.lora.dropout,
            target_modules=cfg.lora.target_modules,
            use_dora=cfg.method == "dora",
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, peft_config)
        metrics = _train_loop(model, tokenizer, train_set, val_set, config, run_dir, progress, log)
        adapter_dir = run_dir / "adapter"
        model.save_pretrained(str(adapter_dir))
        digest = registry.store.put_dir(adapter_dir)
        registry.record_artifact(digest, "adapter", _dir_size(adapter_dir), {"run_id": run_id})
    except BaseException as exc:
        registry.fail_run(run_id, f"{type(exc).__name__}: {exc}")
        raise

    metrics |= {
        "train_examples": len(train_set),
        "validation_examples": len(val_set),
        "truncated": truncated,
        # Eval and serving re-render prompts from the recorded config; these let them prove
        # they render exactly what the adapter was trained on.
        "prompt_sha256": task.prompt_fingerprint(tokenizer),
    }
    manifest = {
        "run_id": run_id,
        "task": task.name,
        "dataset_version": dataset.version,
        "gold_hash": dataset.gold_hash,
        "base_model": base.record(),
        "adapter_digest": digest,
        "method": cfg.method,
        "seed": cfg.seed,
        "metrics": metrics,
        "versions": _library_versions(),
        "hardware": {
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(),
        },
    }
    # Written last: a run folder with run.json is complete.
    (run_dir / "run.json").write_text(json.dumps(manifest, indent=2))
    registry.finish_run(run_id, digest, metrics)
    return TrainResult(run_id, run_dir, adapter_dir, digest, dataset.version, metrics)


@dataclass
class _Best:
    """The adapter weights at the lowest validation loss so far."""

    val_loss: float
    step: int
    state: dict[str, Any]


def _train_loop(
    model: Any,
    tokenizer: Any,
    train_set: list[Encoded],
    val_set: list[Encoded],
    config: ProjectConfig,
    run_dir: Path,
    progress: bool,
    log: Callable[[str], None],
) -> dict[str, Any]:
    import torch
    from tqdm import tqdm

    cfg = config.train
    pad_id = tokenizer.pad_token_id
    precision = resolve_precision(cfg.precision)
    # The system prompt every example starts with is computed once per batch (see answer_loss).
    prefix_len = shared_prefix_length(train_set)
    steps_per_epoch = max(1, len(train_set) // (cfg.batch_size * cfg.grad_accum))
    total_steps = cfg.max_steps or max(1, math.ceil(steps_per_epoch * cfg.epochs))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    warmup = int(total_steps * cfg.warmup_ratio)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, warmup, total_steps))

    val_seconds = 0.0  # kept out of tokens/s: it measures training speed

    def validation_loss() -> float:
        nonlocal val_seconds
        began_val = time.perf_counter()
        with autocast(precision):
            value = _validation_loss(model, val_set, cfg.batch_size, pad_id)
        val_seconds += time.perf_counter() - began_val
        return value

    initial_val = validation_loss()
    val_seconds = 0.0
    best = _Best(initial_val, 0, _trainable_state(model))
    history: list[tuple[float, float]] = []  # (train loss, val loss) at each validation
    warned = False
    tokens = 0
    began = time.perf_counter()
    step = 0
    running = float("nan")
    bar = tqdm(total=total_steps, desc="train", unit="step", disable=not progress, dynamic_ncols=True)
    with open(run_dir / "metrics.jsonl", "a") as metrics_file:

        def emit(record: dict[str, Any]) -> None:
            metrics_file.write(json.dumps(record) + "\n")
            metrics_file.flush()

        emit({"step": 0, "val_loss": initial_val})
        epoch = 0
        while step < total_steps:
            batches = length_grouped_batches(train_set, cfg.batch_size, seed=cfg.seed, epoch=epoch)
            for micro_batches in iterate_steps(batches, cfg.grad_accum):
                if step >= total_steps:
                    break
                model.train()
                answer_total = sum(train_set[i].answer_tokens for mb in micro_batches for i in mb)
                loss_sum = 0.0
                for mb in micro_batches:
                    batch = collate([train_set[i] for i in mb], pad_id)
                    with autocast(precision):
                        loss, _ = answer_loss(model, batch)
                    (loss / answer_total).backward()
                    loss_sum += float(loss.detach())
                    # Counted as a plain trainer would see them: every token of every example.
                    tokens += sum(len(train_set[i].input_ids) for i in mb)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                loss_value = loss_sum / max(answer_total, 1)
                running = loss_value if math.isnan(running) else 0.9 * running + 0.1 * loss_value
                elapsed = time.perf_counter() - began - val_seconds
                record = {
                    "step": step,
                    "loss": round(loss_value, 5),
                    "lr": schedule.get_last_lr()[0],
                    "tokens": tokens,
                    "tokens_per_s": round(tokens / elapsed, 1),
                    "elapsed_s": round(elapsed, 2),
                }
                if step % cfg.eval_every == 0 or step == total_steps:
                    val = validation_loss()
                    record["val_loss"] = round(val, 5)
                    history.append((running, val))
                    if val < best.val_loss:
                        best = _Best(val, step, _trainable_state(model))
                    if not warned and _diverging(history):
                        warned = True
                        log(
                            f"warning: validation loss rose at step {step} while training loss fell: "
                            "the adapter may be overfitting (fewer epochs, more data, or a lower learning rate)"
                        )
                emit(record)
                bar.set_postfix(loss=f"{running:.3f}", val=f"{best.val_loss:.3f}", tok_s=f"{tokens / elapsed:.0f}")
                bar.update(1)
            epoch += 1
    bar.close()
    seconds = time.perf_counter() - began - val_seconds
    if best.step != step:
        _load_trainable_state(model, best.state)
    return {
        "steps": step,
        "epochs": round(step / steps_per_epoch, 3),
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1) if seconds else 0.0,
        "initial_val_loss": round(initial_val, 5),
        "best_val_loss": round(best.val_loss, 5),
        "best_step": best.step,
        "final_train_loss": round(running, 5),
        "shared_prefix_tokens": prefix_len,
        "precision": precision,
        "validation_seconds": round(val_seconds, 2),
    }


def _validation_loss(model: Any, val_set: list[Encoded], batch_size: int, pad_id: int) -> float:
    import torch

    if not val_set:
        return float("nan")
    model.eval()
    total, count = 0.0, 0
    order = sorted(range(len(val_set)), key=lambda i: len(val_set[i].input_ids))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            batch = collate([val_set[i] for i in order[start : start + batch_size]], pad_id)
            loss, n = answer_loss(model, batch)
            total += float(loss)
            count += n
    return total / max(count, 1)


def _lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 10% of the peak."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _diverging(history: list[tuple[float, float]]) -> bool:
    """Two validations in a row with validation loss up while training loss went down."""
    if len(history) < 3:
        return False
    (t0, v0), (t1, v1), (t2, v2) = history[-3:]
    return v2 > v1 > v0 and t2 < t1 < t0


def _trainable_state(model: Any) -> dict[str, Any]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _load_trainable_state(model: Any, state: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in state:
                param.copy_(state[name])


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _library_versions() -> dict[str, str]:
    import importlib.metadata as md

    versions = {"slmkit": __version__, "python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "accelerate"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[name] = md.version(name)
    return versions


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
