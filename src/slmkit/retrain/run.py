"""`slmkit retrain`: data build -> train -> eval (every gate + no_regression_vs production) -> release.

Setup: take the retrain lock, act as `retrain` (every audit row it causes names it), write the
reviewed production items out as the data source the build reads. Then:

1. Has this input been trained already? The same source bytes, settings and production release
   as a finished retrain (or production is what that retrain released): nothing to do, say so.
2. An unfinished retrain (killed, or stopped by an error) with the same input resumes at its
   stage; one whose input changed since is marked abandoned (its run stays, nothing moved).
3. build: the dataset version. Its key (dataset version, config hash, production) is checked
   again: a different input that builds the same dataset is the same retrain.
4. train: the run id is recorded before training starts, so a killed run is resumed from its
   checkpoint (or started again when the kill came before its first record).
5. eval: every gate of the run's recorded config; the paired one compares item by item with the
   release in production. A recorded evaluation of the run is reused.
6. release: only when every gate passed, through the same `run_release` as `slmkit release`
   (checklist, rehearsed rollback, one transaction that moves the alias); a running server
   follows on its next request. A release already made from the run is found, not made twice.

Each stage is recorded as it ends, so a SIGKILL at any moment leaves either the previous stage's
record (the stage runs again: each is idempotent) or the next one. A blocked retrain moves nothing
and keeps its run; its report says which gate failed and by how much.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from slmkit import atomic
from slmkit.config import ProjectConfig
from slmkit.errors import ReleaseBlocked
from slmkit.registry import Registry
from slmkit.registry.records import acting_as
from slmkit.registry.retrains import RetrainRecord
from slmkit.retrain.plan import (
    ACTOR,
    config_hash,
    inputs_fingerprint,
    retrain_config,
    retrain_key,
    retrain_lock,
)
from slmkit.retrain.report import failed_gates

Log = Callable[[str], None]
# Test hook, only beside SLMKIT_TEST_HOOKS=1: die (SIGKILL) right after the named stage's work,
# before its record, the worst moment for what a retrain leaves behind.
KILL_AFTER_ENV = "SLMKIT_TEST_KILL_RETRAIN_AFTER"


@dataclass
class RetrainResult:
    outcome: str  # released / blocked / unchanged
    message: str
    record: RetrainRecord | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)  # the gates (or checklist) that blocked it, with by how much
    report_path: Any = None

    @property
    def exit_code(self) -> int:
        return 6 if self.outcome == "blocked" else 0

    def lines(self) -> list[str]:
        out = [self.message, *(f"  {line}" for line in self.failed)]
        if self.seconds:
            out.append("time per stage: " + ", ".join(f"{k} {v:.0f}s" for k, v in self.seconds.items()))
        if self.report_path is not None:
            out.append(f"report: {self.report_path}")
        return out


def run_retrain(config: ProjectConfig, *, why: str = "", progress: bool = True, log: Log = print) -> RetrainResult:
    """One retrain, resumed when an unfinished one has the same input; see the module docstring."""
    from slmkit.monitor.requests import RequestLog
    from slmkit.monitor.reviewed import write_reviewed_source

    why = why or "run by hand"
    with retrain_lock(config.state_dir), acting_as(ACTOR):
        registry = Registry(config.state_dir)
        try:
            with RequestLog(config.state_dir / "requests.db") as requests:
                log(write_reviewed_source(config, requests).line())
            return _Retrain(config, registry, why, progress, log).run()
        finally:
            registry.close()


class _Retrain:
    def __init__(self, config: ProjectConfig, registry: Registry, why: str, progress: bool, log: Log) -> None:
        self.config = retrain_config(config)
        self.registry = registry
        self.why = why
        self.progress = progress
        self.log = log
        self.name = config.task.name
        self.seconds: dict[str, float] = {}
        current = registry.current(self.name, config.release.alias)
        self.production = current.ref if current is not None else ""
        self.config_hash = config_hash(self.config)

    def run(self) -> RetrainResult:
        inputs = inputs_fingerprint(self.config, self.registry)
        history = self.registry.list_retrains(self.name)
        pending = next((r for r in history if not r.finished), None)
        if pending is not None and not self._same_input(pending, inputs):
            self._abandon(pending, "its input changed before it could resume")
            pending = None
        if pending is None:
            done = _done_before(history, self.name, self.production, inputs=inputs, config_hash=self.config_hash)
            if done is not None:
                return self._unchanged(done)
            record = self._build(inputs, history)
            if isinstance(record, RetrainResult):
                return record
        else:
            record = pending
            self.log(f"== resuming retrain #{record.id} at its {record.stage} stage (started {record.started_at})")
            self.registry.note("retrain_resume", self.name, {"retrain": record.id, "stage": record.stage})
        if record.stage == "train":
            record = self._train(record)
        if record.stage == "eval":
            if self._kept_production(record):
                why = f"training never improved on {self.production}'s adapter: its best checkpoint is the warm start"
                return self._finish(
                    record,
                    "blocked",
                    [why],
                    "nothing new to evaluate or release; review more traffic, or turn monitor.retrain.warm_start off",
                )
            record = self._eval(record)
        return self._release(record)

    def _same_input(self, pending: RetrainRecord, inputs: str) -> bool:
        """The unfinished retrain read what a new one would, against the same production release (or
        production is already the release it made: killed between its release and its record)."""
        if (pending.inputs, pending.config_hash) != (inputs, self.config_hash):
            return False
        if pending.production == self.production:
            return True
        made = [r.ref for r in self.registry.list_releases(self.name) if r.run_id and r.run_id == pending.run_id]
        return self.production in made

    # --- the stages --------------------------------------------------------------------------

    def _build(self, inputs: str, history: list[RetrainRecord]) -> RetrainRecord | RetrainResult:
        from slmkit.data import run_data_build

        self.log(f"== retrain: data build ({self.why})")
        data = self._timed("data", lambda: run_data_build(self.config, registry=self.registry))
        for line in data.summary_lines():
            self.log(line)
        _kill_point("build")
        key = retrain_key(data.version, self.config_hash, self.production)
        done = _done_before(history, self.name, self.production, key=key, dataset_version=data.version,
                            config_hash=self.config_hash)  # fmt: skip
        if done is not None:
            return self._unchanged(done)
        record = self.registry.start_retrain(
            task=self.name, inputs=inputs, config_hash=self.config_hash, production=self.production, why=self.why
        )
        record = self.registry.update_retrain(
            record.id, dataset_version=data.version, key=key, stage="train", detail={"seconds": self.seconds}
        )
        self.registry.note(
            "retrain_start",
            self.name,
            {"retrain": record.id, "why": self.why, "dataset": data.version, "production": self.production or None},
        )
        return record

    def _train(self, record: RetrainRecord) -> RetrainRecord:
        from slmkit.train import run_train

        run_id = record.run_id
        if run_id is None:
            run_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
            record = self.registry.update_retrain(record.id, run_id=run_id)
        run = self.registry.find_run(run_id)
        self.log(f"== retrain #{record.id}: train run {run_id} on {record.dataset_version}")
        if run is None or run.status != "completed":
            kwargs: dict[str, Any] = {"registry": self.registry, "progress": self.progress, "log": self.log}
            if run is None:
                # Killed before the run was recorded (or never started): whatever its folder holds is unrecorded.
                shutil.rmtree(self.config.state_dir / "runs" / run_id, ignore_errors=True)
                kwargs |= {"dataset_version": record.dataset_version, "run_id": run_id}
            else:
                self.log(f"resuming run {run_id} ({run.status}) from its last checkpoint")
                kwargs["resume"] = run_id
            warm = self._warm_start_adapter()  # a resumed run's checkpoint, when it has one, overrides it
            if warm is not None:
                kwargs["init_adapter"] = warm
            trained = self._timed("train", lambda: run_train(self.config, **kwargs))
            for line in trained.summary_lines():
                self.log(line)
        _kill_point("train")
        return self.registry.update_retrain(record.id, stage="eval")

    def _eval(self, record: RetrainRecord) -> RetrainRecord:
        from slmkit.eval import run_eval

        assert record.run_id is not None
        recorded = self.registry.latest_eval(record.run_id)
        if recorded is None:
            self.log(f"== retrain #{record.id}: eval (every gate, and paired against {self.production or 'nothing'})")
            result = self._timed(
                "eval",
                lambda: run_eval(
                    self.config, registry=self.registry, run_id=record.run_id, progress=self.progress, log=self.log
                ),
            )
            for line in result.summary_lines():
                self.log(line)
            digest = result.report_digest
        else:
            digest = recorded.digest
            self.log(f"== retrain #{record.id}: the run's evaluation {digest[:12]} is recorded already")
        _kill_point("eval")
        report = json.loads(self.registry.store.path(digest).read_text(encoding="utf-8"))
        detail = {**record.detail, "eval_report": digest, "gates": report.get("gates", []), "passed": report["passed"]}
        detail["seconds"] = {**detail.get("seconds", {}), **self.seconds}
        return self.registry.update_retrain(record.id, stage="release", detail=detail)

    def _release(self, record: RetrainRecord) -> RetrainResult:
        from slmkit.pipeline import run_release

        assert record.run_id is not None
        if not record.detail.get("passed"):
            failed = failed_gates(record.detail.get("gates", []))
            return self._finish(record, "blocked", failed, f"gate(s) failed; nothing moved, run {record.run_id} kept")
        made = [r for r in self.registry.list_releases(self.name) if r.run_id == record.run_id]
        if made:
            release = made[-1]
            self.log(f"{release.ref} was released from run {record.run_id} already")
        else:
            self.log(f"== retrain #{record.id}: release (every gate passed)")
            try:
                release = self._timed(
                    "release",
                    lambda: run_release(
                        self.config,
                        registry=self.registry,
                        run_id=record.run_id,
                        note=f"retrain #{record.id}: {self.why}",
                        log=self.log,
                    ),
                )
            except ReleaseBlocked as exc:
                return self._finish(record, "blocked", [exc.message], "the production checklist said no; nothing moved")
        _kill_point("release")
        record = self.registry.update_retrain(record.id, release_version=release.version)
        return self._finish(record, "released", [], f"released {release.ref} -> {', '.join(release.aliases)}")

    # --- endings -------------------------------------------------------------------------------

    def _finish(self, record: RetrainRecord, outcome: str, failed: list[str], summary: str) -> RetrainResult:
        detail = {**record.detail, "failed": failed, "seconds": {**record.detail.get("seconds", {}), **self.seconds}}
        record = self.registry.update_retrain(record.id, stage="done", outcome=outcome, detail=detail)
        self.registry.note(
            f"retrain_{outcome}",
            self.name,
            {
                "retrain": record.id,
                "why": record.why,
                "run_id": record.run_id,
                "dataset": record.dataset_version,
                "against": record.production or None,
                "release": record.release_version,
                "failed": failed,
            },
        )
        path = self.config.state_dir / "retrains" / f"{record.id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic.write_json(path, _record_json(record))
        verb = "RELEASED" if outcome == "released" else "BLOCKED"
        message = f"retrain #{record.id} {verb}: {summary}"
        return RetrainResult(outcome, message, record, dict(self.seconds), failed, path)

    def _unchanged(self, done: RetrainRecord) -> RetrainResult:
        what = (
            f"released {self.name}@{done.release_version}"
            if done.outcome == "released"
            else "was blocked: " + "; ".join(done.detail.get("failed", [])[:2])
        )
        message = (
            f"nothing to do: retrain #{done.id} ({done.started_at}) ran on this input already and {what}; "
            f"production is {self.production or 'not set'}. Change the data (review more traffic) or the settings."
        )
        return RetrainResult("unchanged", message, done)

    def _abandon(self, record: RetrainRecord, why: str) -> None:
        self.log(f"retrain #{record.id} (stopped at {record.stage}) is abandoned: {why}; nothing it made was released")
        self.registry.update_retrain(record.id, outcome="abandoned", error=why)
        self.registry.note("retrain_abandoned", self.name, {"retrain": record.id, "why": why, "run_id": record.run_id})

    def _kept_production(self, record: RetrainRecord) -> bool:
        """The run kept production's own adapter (a warm start whose validation loss never improved):
        evaluating it against production would only measure two decodings of one model."""
        run = self.registry.find_run(record.run_id) if record.run_id else None
        if run is None or not run.adapter_digest or not self.production:
            return False
        return run.adapter_digest == self.registry.resolve(self.production).adapter_digest

    def _warm_start_adapter(self) -> Any:
        if not self.config.monitor.retrain.warm_start or not self.production:
            return None
        release = self.registry.resolve(self.production)
        return self.registry.store.path(release.adapter_digest)

    def _timed(self, stage: str, fn: Callable[[], Any]) -> Any:
        began = time.perf_counter()
        try:
            return fn()
        finally:
            self.seconds[stage] = round(time.perf_counter() - began, 1)


def _done_before(
    history: list[RetrainRecord],
    name: str,
    production: str,
    *,
    config_hash: str,
    inputs: str | None = None,
    key: str | None = None,
    dataset_version: str | None = None,
) -> RetrainRecord | None:
    """A finished retrain of the same input: against the same production release, or the one whose
    release production is now (training it again would only repeat it)."""
    for record in history:
        if record.outcome not in ("released", "blocked"):
            continue
        same_input = (
            record.key == key or record.dataset_version == dataset_version
            if key is not None
            else record.inputs == inputs
        ) and record.config_hash == config_hash
        if not same_input:
            continue
        released_now = record.release_version is not None and production == f"{name}@{record.release_version}"
        if record.production == production or released_now:
            return record
    return None


def _record_json(record: RetrainRecord) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(record)


def _kill_point(stage: str) -> None:
    from slmkit.train.checkpoint import TEST_HOOKS_ENV

    if os.environ.get(TEST_HOOKS_ENV) == "1" and os.environ.get(KILL_AFTER_ENV) == stage:
        os.kill(os.getpid(), signal.SIGKILL)
