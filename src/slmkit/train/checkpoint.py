"""The training loop's resumable state, and the checkpoint that holds it on disk.

A run writes `checkpoints/last/` at every validation: the trainable weights, the optimizer and
learning-rate schedule, every random generator (python, numpy, torch), where it stood in the
epoch's batch order, and the loop's counters and best-so-far. Restoring all of it puts the loop
back exactly where it was, so a resumed run reaches the same adapter, bit for bit, as one that
never stopped (same hardware, same threads).

The checkpoint is written into a temporary folder and renamed into place, `state.json` last:
a folder named `last` is always complete. Tensors go to safetensors and `torch.save` files read
back with `weights_only=True`; nothing is unpickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from slmkit.errors import StageError

CHECKPOINT_DIR = "checkpoints"
LAST = "last"
_PREVIOUS = "last.previous"  # the checkpoint being replaced, for the instant between two renames
FORMAT = 1
# Tests set this to make a run kill itself (SIGKILL, as a crash or an OOM killer would) after
# that optimizer step's metrics are written, to prove `--resume` recovers from it. It is obeyed
# only beside TEST_HOOKS_ENV=1: a variable left over in a production environment kills nothing.
KILL_AFTER_STEP_ENV = "SLMKIT_TEST_KILL_AFTER_STEP"
TEST_HOOKS_ENV = "SLMKIT_TEST_HOOKS"


@dataclass
class Best:
    """The trainable weights at the lowest validation loss so far."""

    val_loss: float
    step: int
    state: dict[str, Any]
    rows: list[float] = field(default_factory=list)  # each validation row's mean loss then (paired comparisons)


@dataclass
class LoopState:
    """Everything the training loop carries from one step to the next, besides model and optimizer."""

    initial_val_loss: float
    best: Best
    step: int = 0
    epoch: int = 0
    epoch_step: int = 0  # optimizer steps already taken in this epoch's batch order
    tokens: int = 0
    running: float = float("nan")  # smoothed training loss
    history: list[tuple[float, float]] = field(default_factory=list)  # (train, val) loss at each validation
    warned: bool = False  # the divergence warning was given
    stale: int = 0  # validations in a row without a new best
    stopped_early: bool = False
    train_seconds: float = 0.0  # training time before this process (validation excluded)
    val_seconds: float = 0.0
    checkpoint_seconds: float = 0.0
    metrics_bytes: int = 0  # length of metrics.jsonl when the checkpoint was written
    resumed_at: list[int] = field(default_factory=list)  # the steps this run was resumed at
    decision: str = ""  # why the run stopped early, with its evidence

    def validated(
        self,
        val: float,
        weights: Callable[[], dict[str, Any]],
        should_stop: Callable[[int, int], bool],
        has_rows: bool,
        rows: list[float] | None = None,
    ) -> None:
        """Note a validation: a new best keeps its weights (and per-row losses); otherwise
        `should_stop(step, best_step)` decides whether the run stops.

        With no validation rows there is no loss to compare: the latest weights count as the best,
        and nothing stops early. A NaN loss from a diverged run never counts as a best.
        """
        self.history.append((self.running, val))
        if not has_rows or val < self.best.val_loss:
            self.best = Best(val, self.step, weights(), list(rows or []))
            self.stale = 0
        else:
            self.stale += 1
            self.stopped_early = should_stop(self.step, self.best.step)


@dataclass
class Checkpoint:
    """A checkpoint read back: the loop state and what the model, optimizer and schedule need."""

    state: LoopState
    weights: dict[str, Any]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, Any]
    inputs: dict[str, Any]  # what the run trained on (see `data_fingerprint`)
    versions: dict[str, str]
    sharded: bool = False  # written under FSDP: the optimizer state is keyed by weight name


def save_checkpoint(
    run_dir: Path,
    state: LoopState,
    weights: dict[str, Any],
    optimizer_state: dict[str, Any],
    scheduler: Any,
    *,
    inputs: dict[str, Any],
    versions: dict[str, str],
    sharded: bool = False,
) -> float:
    """Write `checkpoints/last/` atomically; returns the seconds it took.

    `optimizer_state` is the optimizer's `state_dict()`, or under FSDP its whole state keyed by
    weight name (`sharded`): the two read back only into the same kind of run.
    """
    import torch
    from safetensors.torch import save_file

    began = time.perf_counter()
    parent = run_dir / CHECKPOINT_DIR
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".writing-", dir=parent))
    try:
        save_file(weights, str(tmp / "weights.safetensors"))
        if state.best.step != state.step:
            save_file(state.best.state, str(tmp / "best.safetensors"))
        torch.save(
            {"optimizer": optimizer_state, "scheduler": scheduler.state_dict(), **_torch_rng()},
            tmp / "optimizer.pt",
        )
        # Not dataclasses.asdict: it would deep-copy the best weights only to drop them.
        meta = {f.name: getattr(state, f.name) for f in fields(state)}
        meta["best"] = {"val_loss": state.best.val_loss, "step": state.best.step, "rows": state.best.rows}
        record = {
            "format": FORMAT,
            "state": meta,
            "rng": _host_rng(),
            "inputs": inputs,
            "versions": versions,
            "sharded": sharded,
        }
        # Written last: a folder holding state.json holds a whole checkpoint.
        (tmp / "state.json").write_text(json.dumps(record))
        last, previous = parent / LAST, parent / _PREVIOUS
        if last.exists():
            shutil.rmtree(previous, ignore_errors=True)
            last.rename(previous)
        tmp.rename(last)
        shutil.rmtree(previous, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return time.perf_counter() - began


def load_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The run's last complete checkpoint, or None when it never wrote one."""
    import torch
    from safetensors.torch import load_file

    parent = run_dir / CHECKPOINT_DIR
    # A kill between the two renames of `save_checkpoint` leaves only the previous one.
    folder = next((d for d in (parent / LAST, parent / _PREVIOUS) if (d / "state.json").exists()), None)
    if folder is None:
        return None
    record = json.loads((folder / "state.json").read_text())
    if record.get("format") != FORMAT:
        raise StageError(
            f"checkpoint {folder} has format {record.get('format')}, this slmkit reads {FORMAT}",
            hint="resume it with the slmkit version that wrote it, or start a new run",
        )
    meta = record["state"]
    weights = load_file(str(folder / "weights.safetensors"))
    best_file = folder / "best.safetensors"
    best_weights = load_file(str(best_file)) if best_file.exists() else {k: v.clone() for k, v in weights.items()}
    best = Best(meta["best"]["val_loss"], meta["best"]["step"], best_weights, meta["best"].get("rows", []))
    state = LoopState(**{**meta, "best": best, "history": [tuple(h) for h in meta["history"]]})
    saved = torch.load(folder / "optimizer.pt", weights_only=True)
    rng = {**record["rng"], "torch": saved["torch_rng"], "cuda": saved["cuda_rng"]}
    return Checkpoint(
        state,
        weights,
        saved["optimizer"],
        saved["scheduler"],
        rng,
        record["inputs"],
        record["versions"],
        bool(record.get("sharded", False)),
    )


def restore_rng(rng: dict[str, Any]) -> None:
    """Put every random generator back as the checkpoint found it."""
    import numpy as np
    import torch

    version, internal, gauss = rng["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = rng["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(rng["torch"])
    if rng["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(rng["cuda"]))


def _host_rng() -> dict[str, Any]:
    import numpy as np

    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    return {
        "python": [version, list(internal), gauss],
        "numpy": [name, np.asarray(keys).tolist(), pos, has_gauss, cached],
    }


def _torch_rng() -> dict[str, Any]:
    import torch

    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"torch_rng": torch.get_rng_state(), "cuda_rng": cuda}


def data_fingerprint(*example_sets: Sequence[Any]) -> str:
    """sha256 over the token ids and labels of the encoded examples, in order.

    Catches what the dataset version alone cannot: a changed tokenizer, chat template, loss
    setting or replay mix makes different training examples from the same rows.
    """
    digest = hashlib.sha256()
    for examples in example_sets:
        digest.update(f"set:{len(examples)};".encode())
        for e in examples:
            digest.update(json.dumps([e.input_ids, e.labels]).encode())
    return digest.hexdigest()


def check_same_inputs(saved: dict[str, Any], current: dict[str, Any], run_id: str) -> None:
    """Refuse to continue a run on different training data than it started with."""
    differ = [key for key in sorted(saved.keys() | current.keys()) if saved.get(key) != current.get(key)]
    if differ:
        detail = "; ".join(
            f"{k}: {_short(saved.get(k))} in the checkpoint, {_short(current.get(k))} now" for k in differ
        )
        raise StageError(
            f"cannot resume run {run_id}: its training inputs changed ({detail})",
            hint="resume with the tokenizer, data and settings the run started with, or start a new run",
        )


def version_drift(saved: dict[str, str], current: dict[str, str]) -> list[str]:
    """Libraries whose version changed since the checkpoint (the result may then differ in the last bits)."""
    return [f"{k} {saved.get(k)} -> {current.get(k)}" for k in sorted(saved) if saved.get(k) != current.get(k)]


def kill_point(step: int) -> None:
    """Die here, without any clean-up, when a test asked for it (see KILL_AFTER_STEP_ENV)."""
    if os.environ.get(TEST_HOOKS_ENV) != "1":
        return
    target = os.environ.get(KILL_AFTER_STEP_ENV)
    if target and int(target) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def _short(value: Any) -> str:
    text = str(value)
    return text[:12] + "…" if len(text) > 16 else text


def trainable_weights(model: Any, *, copy: bool = True) -> dict[str, Any]:
    """Every weight that trains (the adapter, or the whole model for full fine-tuning); `copy=False` for a view."""
    return {n: p.detach().clone() if copy else p.detach() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable_weights(model: Any, weights: dict[str, Any]) -> None:
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name in weights:
                param.copy_(weights[name])


def resume_training(
    checkpoint: Checkpoint,
    model: Any,
    optimizer: Any,
    scheduler: Any,
    *,
    inputs: dict[str, Any],
    versions: dict[str, str],
    run_id: str,
    log: Callable[[str], None],
    sharding: Any = None,
) -> LoopState:
    """Put model, optimizer, schedule and random generators back as the checkpoint holds them.

    Under FSDP (`sharding`, a slmkit.train.sharded.Sharding) every process reads the whole
    checkpoint and keeps its own slice of the weights and optimizer state.
    """
    check_same_inputs(checkpoint.inputs, inputs, run_id)
    if checkpoint.sharded != (sharding is not None):
        written, now = ("under FSDP", "without it") if checkpoint.sharded else ("without FSDP", "under it")
        raise StageError(
            f"cannot resume run {run_id}: its checkpoint was written {written} and this launch runs {now}",
            hint="resume with the launch the run started with (`accelerate launch --use_fsdp` or not)",
        )
    expected = {n for n, p in model.named_parameters() if p.requires_grad}
    if expected != set(checkpoint.weights):
        raise StageError(
            f"cannot resume run {run_id}: its checkpoint holds {len(checkpoint.weights)} trainable tensors, "
            f"the model now has {len(expected)}",
            hint="resume with the method and adapter settings the run started with",
        )
    drift = version_drift(checkpoint.versions, versions)
    if drift:
        log(
            f"warning: libraries changed since the checkpoint ({', '.join(drift)}); "
            "the resumed run may differ from an uninterrupted one in the last bits"
        )
    if sharding is not None:
        sharding.restore(checkpoint.weights, everywhere=True)
        sharding.load_optimizer_state(optimizer, checkpoint.optimizer)
    else:
        load_trainable_weights(model, checkpoint.weights)
        optimizer.load_state_dict(checkpoint.optimizer)
    scheduler.load_state_dict(checkpoint.scheduler)
    restore_rng(checkpoint.rng)
    state = checkpoint.state
    state.resumed_at.append(state.step)
    log(
        f"resuming run {run_id} from its checkpoint at step {state.step} "
        f"(epoch {state.epoch}, best validation loss {state.best.val_loss:.4f} at step {state.best.step})"
    )
    return state


def library_versions() -> dict[str, str]:
    """slmkit, Python and the libraries a run's numbers depend on, as installed now."""
    import importlib.metadata as md
    import platform

    from slmkit import __version__

    versions = {"slmkit": __version__, "python": platform.python_version()}
    for name in ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "safetensors", "tokenizers", "numpy"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[name] = md.version(name)
    return versions
