"""`slmkit train --resume RUN`: find the run, prove it may be continued, and reopen it.

A run may be continued when it did not complete (it failed, or was killed and still reads
`running`), no other process is training it, and the settings that shape the adapter, the
dataset version and the base model weights are the ones it started with. Anything else is
refused, naming what differs: a resumed run must reach the adapter an uninterrupted run would.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from slmkit.config import ProjectConfig, TrainConfig
from slmkit.errors import StageError
from slmkit.registry import Registry, RunRecord

LOCK_FILE = "train.lock"
# Settings that cannot change what is trained: where metrics are also sent.
_IGNORED = {("train", "loggers")}
# The parts of slmkit.yaml that shape the adapter. `data` is not among them: a resumed run reads
# the dataset version it started with, whatever the data settings say now.
_COMPARED = ("base_model", "task", "train")


def find_resumable_run(
    registry: Registry, config: ProjectConfig, run_id: str, dataset_version: str | None
) -> RunRecord:
    """The unfinished run `run_id` of this task, checked against slmkit.yaml and `--dataset`."""
    task = config.task.name
    run = next((r for r in registry.list_runs(task) if r.run_id == run_id), None)
    if run is None:
        recent = [r.run_id for r in registry.list_runs(task)[-5:]]
        raise StageError(
            f"no training run '{run_id}' for task {task}; recent runs: {', '.join(recent) or 'none'}",
            hint="pass a run id from .slmkit/runs/",
        )
    if run.status == "completed":
        raise StageError(
            f"run {run_id} already completed (adapter sha256:{(run.adapter_digest or '')[:12]})",
            hint="nothing to resume; train a new run with `slmkit train`",
        )
    if dataset_version is not None and dataset_version != run.dataset_version:
        raise StageError(
            f"cannot resume run {run_id} on dataset {dataset_version}: it trains on {run.dataset_version}",
            hint="drop --dataset (a resumed run keeps its dataset), or start a new run on the new dataset",
        )
    differences = config_differences(run.config, config.resolved())
    if differences:
        raise StageError(
            f"cannot resume run {run_id}: slmkit.yaml differs from the run's settings: " + "; ".join(differences),
            hint=f"restore these settings (the run's are in .slmkit/runs/{run_id}/config.json), "
            "or start a new run with `slmkit train`",
        )
    return run


@contextmanager
def reopened_run(registry: Registry, run: RunRecord, run_dir: Path, base_record: dict[str, Any]) -> Iterator[None]:
    """Check the base model, take the run's lock and mark the run running again; the lock is held
    until the block ends, so no other process can resume (or fail) the run meanwhile.

    A process that cannot take the lock is refused before it writes anything to the run.
    """
    if not run_dir.is_dir():
        raise StageError(f"run {run.run_id} has no folder {run_dir}", hint="start a new run with `slmkit train`")
    if base_record.get("sha256") != run.base_model.get("sha256"):
        raise StageError(
            f"cannot resume run {run.run_id}: base model {base_record.get('model_id')} has weights "
            f"sha256:{str(base_record.get('sha256'))[:12]}, the run started on "
            f"sha256:{str(run.base_model.get('sha256'))[:12]}",
            hint="resume with the base model the run started on, or start a new run",
        )
    with run_lock(run_dir):
        # Read again under the lock: another process may have finished the run since it was found.
        now = next((r for r in registry.list_runs(run.task) if r.run_id == run.run_id), run)
        if now.status == "completed":
            raise StageError(
                f"run {run.run_id} already completed (adapter sha256:{(now.adapter_digest or '')[:12]})",
                hint="nothing to resume; train a new run with `slmkit train`",
            )
        registry.reopen_run(run.run_id)
        yield


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Held while a process trains the run, so a second one cannot resume it at the same time."""
    with open(run_dir / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StageError(
                f"run {run_dir.name} is being trained by another process",
                hint="wait for it to finish, or stop it before resuming",
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def config_differences(recorded: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """`path: old in the run, new now` for each adapter-shaping setting that changed."""
    out: list[str] = []
    for key in _COMPARED:
        _diff(_with_defaults(key, recorded.get(key)), current.get(key), (key,), out)
    return out


def _with_defaults(section: str, recorded: Any) -> Any:
    """The recorded `train` section with settings added since the run started at their defaults:
    a run recorded before a setting existed trained as that default does."""
    if section != "train" or not isinstance(recorded, dict):
        return recorded
    try:
        return {**TrainConfig.model_validate(recorded).model_dump(mode="json"), **recorded}
    except ValueError:  # not valid under today's rules: compared as recorded, which names the difference
        return recorded


def _diff(old: Any, new: Any, path: tuple[str, ...], out: list[str]) -> None:
    if path in _IGNORED:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(old.keys() | new.keys()):
            _diff(old.get(key), new.get(key), (*path, key), out)
    elif old != new:
        out.append(f"{'.'.join(path)}: {_show(old)} in the run, {_show(new)} now")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"
