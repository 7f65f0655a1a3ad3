"""`slmkit train`: one readable SFT recipe. Setup -> train -> save -> report.

LoRA (or DoRA) through PEFT on a frozen base, loss on the answer tokens only, validation loss
every `eval_every` steps, and the adapter from the step with the best validation loss. Each
validation writes a checkpoint (`--resume` continues from it) and may stop the run early.
"""

from __future__ import annotations

import contextlib
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

from slmkit import atomic
from slmkit.config import ProjectConfig
from slmkit.data import open_dataset
from slmkit.data.split import sample_rows
from slmkit.errors import StageError
from slmkit.models import load_tokenizer, resolve_base_model
from slmkit.models.precision import autocast, resolve_precision
from slmkit.registry import Registry
from slmkit.task import Task
from slmkit.train.batches import (
    Encoded,
    collate,
    encode_example,
    epoch_batches,
    iterate_steps,
    padding_share,
    prompt_cost,
    shared_prefix_length,
)
from slmkit.train.checkpoint import (
    Best,
    LoopState,
    data_fingerprint,
    kill_point,
    library_versions,
    load_checkpoint,
    load_trainable_weights,
    resume_training,
    save_checkpoint,
    trainable_weights,
)
from slmkit.train.distributed import World
from slmkit.train.loss import answer_loss
from slmkit.train.methods import load_base, make_trainable, save_trained, warm_start
from slmkit.train.observe import MetricsLog, check_loggers, flat_params, write_loss_plot
from slmkit.train.replay import prepare_replay
from slmkit.train.resume import find_resumable_run, reopened_run, run_lock
from slmkit.train.schedule import Schedule
from slmkit.train.sharded import Sharding, shard
from slmkit.train.stopping import AUTO_VALIDATION_ROWS, StoppingRule, paired_difference


@dataclass
class TrainResult:
    run_id: str
    run_dir: Path
    adapter_dir: Path
    adapter_digest: str
    dataset_version: str
    metrics: dict[str, Any] = field(default_factory=dict)
    is_main: bool = True  # False in the other processes of a distributed run, which print nothing

    def summary_lines(self) -> list[str]:
        m = self.metrics
        return [
            f"run {self.run_id}: {m['steps']} steps, {m['train_examples']} examples, "
            f"{m['tokens']:,} tokens in {m['seconds']:.0f}s ({m['tokens_per_s']:.0f} tokens/s, {m['precision']})",
            f"validation loss {m['initial_val_loss']:.3f} -> {m['best_val_loss']:.3f} (best at step "
            f"{m['best_step']}{', stopped early' if m.get('stopped_early') else ''}); "
            f"final train loss {m['final_train_loss']:.3f}",
            f"adapter sha256:{self.adapter_digest[:12]} in {self.adapter_dir}",
        ]


def run_train(
    config: ProjectConfig,
    *,
    registry: Registry | None = None,
    dataset_version: str | None = None,
    resume: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    run_id: str | None = None,
    init_adapter: Path | None = None,
) -> TrainResult:
    """Train an adapter on the latest (or given) dataset version and record the run.

    `resume=RUN_ID` continues an unfinished run from its last checkpoint, in its own folder.
    `run_id` names a new run (`slmkit retrain` records it before training, to find it again after a
    kill); `init_adapter` starts the LoRA weights from an adapter of the same shape (a warm start
    from the release in production) instead of PEFT's fresh initialisation.
    Under `accelerate launch` every process trains on its share of each batch (see
    slmkit.train.distributed) and only the main one writes and logs.
    """
    import torch

    cfg = config.train
    check_loggers(cfg.loggers)
    world = World.from_env(cfg.device)
    if not world.is_main:
        log, progress = _silent, False
    registry = registry or Registry(config.state_dir)
    resumed = find_resumable_run(registry, config, resume, dataset_version) if resume else None
    dataset = open_dataset(config, registry, resumed.dataset_version if resumed else dataset_version)
    task = Task.from_config(config)
    _seed_everything(cfg.seed)
    # Processes on one machine share its cores.
    torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // world.size))

    base = resolve_base_model(config.base_model, config.root)
    tokenizer = load_tokenizer(base, padding_side="right")
    train_rows = dataset.examples("train")
    if not train_rows:
        raise StageError(f"dataset {dataset.version} has no training rows", hint="add data and run `slmkit data build`")

    def encode(rows: list[Any]) -> list[Encoded]:
        return [
            encode_example(
                task,
                tokenizer,
                task.model_input(r.input, r.prompt_context),
                r.output,
                cfg.max_seq_len,
                r.history,
                cfg.loss_on,
            )
            for r in rows
        ]

    train_set = encode(train_rows)
    validation_rows = dataset.examples("validation")
    val_limit = cfg.max_validation_rows or AUTO_VALIDATION_ROWS
    val_set = encode(sample_rows(validation_rows, val_limit, task.cfg.label_field, seed=cfg.seed))
    validation_available = len(validation_rows)
    truncated = sum(e.truncated for e in train_set)
    if truncated:
        log(
            f"warning: {truncated} training examples exceed max_seq_len={cfg.max_seq_len}; "
            "their earlier turns, then the end of their input, were cut (system prompt and answers kept whole)"
        )

    # The main process holds the run's lock from the moment it opens (or reopens) the run to its
    # last record: a second `--resume` of the same run is refused before it writes anything.
    with contextlib.ExitStack() as held:
        if resumed:
            run_id, run_dir = resumed.run_id, config.state_dir / "runs" / resumed.run_id
            if world.is_main:
                held.enter_context(reopened_run(registry, resumed, run_dir, base.record()))
        else:
            run_id = world.share(run_id or datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2))
            run_dir = config.state_dir / "runs" / run_id
            if world.is_main:
                run_dir.mkdir(parents=True)
                held.enter_context(run_lock(run_dir))
                resolved = config.resolved()
                if init_adapter is not None:
                    resolved["_warm_start"] = {"adapter": str(init_adapter)}
                atomic.write_json(run_dir / "config.json", resolved)
                registry.start_run(run_id, task.name, dataset.version, base.record(), resolved)

        adapter_dir = run_dir / "adapter"
        digest = ""
        try:
            # Logs the memory the method needs first; a 4-bit base for qlora.
            model = load_base(base, cfg, log, train_set, device=world.device)
            # Before any adapter: the base answers the general prompts (cached) for replay and the
            # drift check. The main process fills the cache; the others then read it.
            if not world.is_main:
                world.wait()
            replay = prepare_replay(config, base.sha256, model, tokenizer, len(train_set), log)
            if world.is_main:
                world.wait()
            train_set = train_set + replay.rows
            model = make_trainable(model, cfg)
            if init_adapter is not None:
                warm_start(model, init_adapter, log)  # a checkpoint of a resumed run overrides it
            sharding = shard(model, world, cfg.method) if world.sharded else None
            if sharding is not None:
                log(f"FSDP: every weight sharded across {world.size} processes (each decoder layer its own unit)")
            metrics = _train_loop(
                model,
                tokenizer,
                train_set,
                val_set,
                config,
                run_dir,
                progress,
                log,
                world,
                sharding,
                validation_available,
            )
            if sharding is not None:
                # The loop left the kept weights in the shards; the main process checks drift and
                # saves from an ordinary copy of the model that holds them whole.
                weights = sharding.capture()
                if world.is_main:
                    model = make_trainable(load_base(base, cfg, _silent, train_set, device=world.device), cfg)
                    load_trainable_weights(model, weights)
            if world.is_main:
                metrics |= replay.finish(model, log)
                save_trained(model, adapter_dir, cfg.method)
                digest = registry.store.put_dir(adapter_dir)
                registry.record_artifact(digest, "adapter", _dir_size(adapter_dir), {"run_id": run_id})
            digest = world.share(digest)
        except BaseException as exc:
            if world.is_main:
                registry.fail_run(run_id, f"{type(exc).__name__}: {exc}")
            raise
        metrics["processes"] = world.size

        metrics |= {
            "train_examples": len(train_set),
            "validation_examples": len(val_set),
            "truncated": truncated,
            # Eval and serving re-render prompts from the recorded config; these let them prove
            # they render exactly what the adapter was trained on.
            "prompt_sha256": task.prompt_fingerprint(tokenizer),
        }
        if not world.is_main:
            return TrainResult(run_id, run_dir, adapter_dir, digest, dataset.version, metrics, is_main=False)
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
            "versions": library_versions(),
            "hardware": {
                "machine": platform.machine(),
                "cpus": os.cpu_count(),
                "threads": torch.get_num_threads(),
                "processes": world.size,
                "device": world.device,
                "gpu": torch.cuda.get_device_name(world.device) if world.device != "cpu" else None,
            },
        }
        # Written last, atomically: a run folder with run.json is complete.
        atomic.write_json(run_dir / "run.json", manifest)
        registry.finish_run(run_id, digest, metrics)
        return TrainResult(run_id, run_dir, adapter_dir, digest, dataset.version, metrics)


def _train_loop(
    model: Any,
    tokenizer: Any,
    train_set: list[Encoded],
    val_set: list[Encoded],
    config: ProjectConfig,
    run_dir: Path,
    progress: bool,
    log: Callable[[str], None],
    world: World | None = None,
    sharding: Sharding | None = None,
    validation_available: int | None = None,
) -> dict[str, Any]:
    """Train, validating and checkpointing every `eval_every` steps; stop early when validation stalls
    (slmkit.train.stopping).

    A run folder that holds a checkpoint is resumed from it: model, optimizer, schedule, random
    generators and counters come back as they were, so the run goes on as if never stopped.
    Under FSDP (`sharding`) the weights live in shards: the loss runs through the sharded root,
    FSDP sums the gradients, and whole weights are gathered only to keep or checkpoint them.
    """
    import torch
    from tqdm import tqdm

    cfg = config.train
    world = world or World()
    pad_id = tokenizer.pad_token_id
    device = world.device
    precision = resolve_precision(cfg.precision, device)
    # The system prompt every example starts with is computed once per batch (see answer_loss).
    prefix_len = shared_prefix_length(train_set)
    cost = prompt_cost(train_set, prefix_len, cfg.batch_size)
    val_cost = prompt_cost(val_set, shared_prefix_length(val_set), cfg.batch_size)
    length = Schedule.plan(cfg.epochs, cost.epoch_tokens)
    steps_per_epoch = max(1, len(train_set) // (cfg.batch_size * cfg.grad_accum))
    total_steps = cfg.max_steps or max(1, math.ceil(steps_per_epoch * length.epochs))
    rule = StoppingRule.from_config(
        cfg,
        steps_per_epoch=steps_per_epoch,
        total_steps=total_steps,
        validation_rows=len(val_set),
        validation_available=len(val_set) if validation_available is None else validation_available,
        epoch_tokens=cost.epoch_tokens,
        validation_tokens=val_cost.epoch_tokens,
    )
    if world.is_main:
        log(cost.line())
        log(
            length.line()
            if not cfg.max_steps
            else f"max_steps: {cfg.max_steps} ({total_steps / steps_per_epoch:.2f} epoch)"
        )
        log(rule.describe())
    params = [p for p in model.parameters() if p.requires_grad]
    if sharding is None:
        world.same_weights(params)  # (sharding did it before cutting the weights up)

    def loss_of(batch: dict[str, Any]) -> tuple[Any, int]:
        return sharding.loss(batch) if sharding else answer_loss(model, batch)

    def kept_weights() -> dict[str, Any]:  # every process calls it: under FSDP it gathers
        return sharding.capture() if sharding else trainable_weights(model)

    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    warmup = int(total_steps * cfg.warmup_ratio)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, warmup, total_steps))
    inputs = {"data_fingerprint": data_fingerprint(train_set, val_set)}
    versions = library_versions()

    paused = {"validation": 0.0, "checkpoint": 0.0}  # kept out of tokens/s: it measures training speed

    def validation_loss() -> tuple[float, list[float]]:
        began_val = time.perf_counter()
        with autocast(precision, device):
            value = _validation_loss(model, val_set, cfg.batch_size, pad_id, world, loss_of)
        paused["validation"] += time.perf_counter() - began_val
        return value

    checkpoint = load_checkpoint(run_dir)  # only a resumed run's folder holds one
    if checkpoint is None:
        initial_val, initial_rows = validation_loss()
        state = LoopState(initial_val, Best(initial_val, 0, kept_weights(), initial_rows))
    else:
        state = resume_training(
            checkpoint,
            model,
            optimizer,
            schedule,
            inputs=inputs,
            versions=versions,
            run_id=run_dir.name,
            log=log,
            sharding=sharding,
        )
    paused["validation"] = 0.0
    before = (state.train_seconds, state.val_seconds, state.checkpoint_seconds)  # earlier processes of this run
    began = time.perf_counter()

    def train_seconds() -> float:
        return before[0] + time.perf_counter() - began - sum(paused.values())

    bar = tqdm(
        total=total_steps,
        initial=state.step,
        desc="train",
        unit="step",
        disable=not progress,
        dynamic_ncols=True,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}, ETA {remaining}{postfix}]",
    )
    # run_train holds the run's lock: only that process may cut metrics.jsonl back to the checkpoint.
    with (
        MetricsLog(
            run_dir,
            cfg.loggers,
            keep_bytes=state.metrics_bytes,
            first_step=state.step + 1 if checkpoint else 0,
            params=flat_params(config.resolved()["train"], "train."),
        )
        if world.is_main
        else _NoMetrics() as sinks,
    ):
        if checkpoint is None:
            sinks.emit({"step": 0, "val_loss": state.initial_val_loss})
        while state.step < total_steps and not state.stopped_early:
            batches = epoch_batches(train_set, cfg.batch_size, cfg.batching, seed=cfg.seed, epoch=state.epoch)
            steps = list(iterate_steps(batches, cfg.grad_accum))
            if not steps:
                raise StageError(
                    f"{len(train_set)} training examples make no optimizer step of {cfg.grad_accum} micro-batches",
                    hint="lower train.grad_accum or train.batch_size, or add data",
                )
            # A resumed run skips the steps its epoch had already taken, in the same seeded order.
            for micro_batches in steps[state.epoch_step :]:
                if state.step >= total_steps:
                    break
                model.train()
                answer_total = sum(train_set[i].answer_tokens for mb in micro_batches for i in mb)
                loss_sum = 0.0
                for mb in micro_batches:
                    # Counted as a plain trainer would see them: every token of every example
                    # (of every process: the count is the step's, whoever computed it).
                    state.tokens += sum(len(train_set[i].input_ids) for i in mb)
                    mine = world.shard(mb)
                    if not mine and sharding is None:
                        continue
                    # Under FSDP a process without rows still runs one (counted as nothing): the
                    # processes gather every layer's weights together.
                    batch = collate(
                        [train_set[i] for i in mine or mb[:1]], pad_id, share_prefix=sharding is None, device=device
                    )
                    with autocast(precision, device):
                        loss, _ = loss_of(batch)
                    if not mine:
                        loss = loss * 0.0
                    (loss / answer_total).backward()
                    loss_sum += float(loss.detach())
                if sharding is None:  # FSDP has summed them already, each process its slice
                    world.sum_gradients(params)
                (loss_sum,) = world.sum(loss_sum)
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                state.step += 1
                state.epoch_step += 1
                loss_value = loss_sum / max(answer_total, 1)
                state.running = loss_value if math.isnan(state.running) else 0.9 * state.running + 0.1 * loss_value
                elapsed = train_seconds()
                record = {
                    "step": state.step,
                    "loss": round(loss_value, 5),
                    "lr": schedule.get_last_lr()[0],
                    "tokens": state.tokens,
                    "tokens_per_s": round(state.tokens / elapsed, 1),
                    "elapsed_s": round(elapsed, 2),
                }
                validating = state.step % rule.eval_every == 0 or state.step == total_steps
                if validating:
                    val, row_losses = validation_loss()
                    record["val_loss"] = round(val, 5)
                    paired = paired_difference(row_losses, state.best.rows)
                    if paired is not None:
                        record["val_vs_best"], record["val_vs_best_se"] = round(paired[0], 5), round(paired[1], 5)
                    state.validated(val, kept_weights, rule.should_stop, bool(val_set), row_losses)
                    if state.stopped_early:
                        state.decision = rule.decision(state.step, state.best.step, state.best.val_loss, val, paired)
                    if not state.warned and _diverging(state.history):
                        state.warned = True
                        log(
                            f"warning: validation loss rose at step {state.step} while training loss fell: "
                            "the adapter may be overfitting (fewer epochs, more data, or a lower learning rate)"
                        )
                sinks.emit(record)
                if validating and sharding is not None:  # gathered by all, written by the main process
                    began_gather = time.perf_counter()
                    weights, optimizer_state = sharding.capture(), sharding.optimizer_state(optimizer)
                    paused["checkpoint"] += time.perf_counter() - began_gather
                elif validating:
                    weights = trainable_weights(model, copy=False)  # written straight from the parameters
                    optimizer_state = optimizer.state_dict()
                if validating and world.is_main:
                    state.train_seconds = train_seconds()
                    state.val_seconds = before[1] + paused["validation"]
                    state.checkpoint_seconds = before[2] + paused["checkpoint"]
                    state.metrics_bytes = sinks.tell()
                    paused["checkpoint"] += save_checkpoint(
                        run_dir,
                        state,
                        weights,
                        optimizer_state,
                        schedule,
                        inputs=inputs,
                        versions=versions,
                        sharded=sharding is not None,
                    )
                    write_loss_plot(run_dir, state.best.step)
                if world.is_main:
                    kill_point(state.step)
                bar.set_postfix(
                    loss=f"{state.running:.3f}", val=f"{state.best.val_loss:.3f}", tok_s=f"{state.tokens / elapsed:.0f}"
                )
                bar.update(1)
                if state.stopped_early:
                    break
            else:
                state.epoch += 1
                state.epoch_step = 0
    bar.close()
    if state.stopped_early and world.is_main:
        log(state.decision)
    if world.is_main:
        write_loss_plot(run_dir, state.best.step)
    seconds = train_seconds()
    if state.best.step != state.step:
        if sharding is not None:
            sharding.restore(state.best.state)
        else:
            load_trainable_weights(model, state.best.state)
    return {
        "steps": state.step,
        "epochs": round(state.step / steps_per_epoch, 3),
        "tokens": state.tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(state.tokens / seconds, 1) if seconds else 0.0,
        "initial_val_loss": round(state.initial_val_loss, 5),
        "best_val_loss": round(state.best.val_loss, 5),
        "best_step": state.best.step,
        "stopped_early": state.stopped_early,
        "final_train_loss": round(state.running, 5),
        "shared_prefix_tokens": prefix_len,
        "prompt_cost": cost.as_dict(),
        "schedule": length.as_dict(),
        "early_stopping": {**rule.as_dict(), "decision": state.decision or None},
        "batching": cfg.batching,
        # Of the first epoch's batches (every epoch's are alike): what the batching costs in compute.
        "padding_share": round(
            padding_share(train_set, epoch_batches(train_set, cfg.batch_size, cfg.batching, seed=cfg.seed, epoch=0)),
            4,
        ),
        "precision": precision,
        "validation_seconds": round(before[1] + paused["validation"], 2),
        "checkpoint_seconds": round(before[2] + paused["checkpoint"], 2),
        "resumed_at_steps": state.resumed_at,
    }


def _validation_loss(
    model: Any,
    val_set: list[Encoded],
    batch_size: int,
    pad_id: int,
    world: World,
    loss_of: Callable[[dict[str, Any]], tuple[Any, ...]] | None = None,
) -> tuple[float, list[float]]:
    """Mean loss per answer token over the validation rows (each process takes its share of each
    batch), and this process's rows' own mean losses in a fixed order (for the paired comparison
    of two validations; empty under FSDP, whose loss does not split by row).

    Under FSDP every process must run every forward (they gather weights together): one without
    rows in a batch runs a row it does not count.
    """
    import torch

    sharded = loss_of is not None and world.sharded
    if not val_set:
        return float("nan"), []
    model.eval()
    total, count = 0.0, 0
    rows_mean: list[float] = []
    order = sorted(range(len(val_set)), key=lambda i: len(val_set[i].input_ids))
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            mine = world.shard(rows)
            if not mine and not sharded:
                continue
            batch = collate(
                [val_set[i] for i in mine or rows[:1]], pad_id, share_prefix=not sharded, device=world.device
            )
            if sharded:
                assert loss_of is not None
                loss, n = loss_of(batch)
            else:
                loss, n, row_loss, row_tokens = answer_loss(model, batch, per_row=True)
                rows_mean.extend((row_loss / row_tokens.clamp(min=1)).tolist())
            if mine:
                total += float(loss)
                count += n
    loss_sum, tokens = world.sum(total, count)
    return loss_sum / max(tokens, 1.0), rows_mean


class _NoMetrics:
    """The metric sinks of a process that is not the main one: it writes nothing."""

    def __enter__(self) -> _NoMetrics:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def emit(self, record: dict[str, Any]) -> None:
        return None

    def tell(self) -> int:
        return 0


def _silent(message: str) -> None:
    return None


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


def _seed_everything(seed: int) -> None:
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
