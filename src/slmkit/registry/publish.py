"""What makes a run releasable, checked from the records alone (no model is loaded here).

`slmkit.pipeline.run_release` runs these checks, then the production checklist and the
rollback rehearsal, then records the release.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from slmkit.config import ProjectConfig, parse_gate
from slmkit.errors import GateFailed, GoldSetChanged, RegistryError, StageError
from slmkit.registry.records import EvalRecord, RunRecord
from slmkit.registry.registry import Registry


@dataclass(frozen=True)
class Candidate:
    """An evaluated run whose gates passed on the locked gold set, its artifacts intact."""

    run: RunRecord
    evaluation: EvalRecord
    adapter_digest: str
    report: dict[str, Any]  # the stored eval report

    @property
    def subject(self) -> str:
        return f"run {self.run.run_id}"


def check_candidate(config: ProjectConfig, registry: Registry, run_id: str | None = None) -> Candidate:
    """The run (latest by default) ready to release; refuses one that was not evaluated, whose
    gates failed, whose gold set is no longer the locked one, or whose artifacts are missing or altered.
    """
    task = config.task.name
    run = registry.get_run(run_id, task=task)
    evaluation = registry.latest_eval(run.run_id)
    if evaluation is None:
        raise StageError(f"run {run.run_id} has not been evaluated", hint=f"run `slmkit eval --run {run.run_id}`")
    if not evaluation.passed:
        failed = [g for g in evaluation.summary.get("gates", []) if not g.get("passed")]
        raise GateFailed(
            f"release of run {run.run_id} blocked by {len(failed)} failed gate(s): "
            + "; ".join(_describe_gate(g) for g in failed),
            hint="improve the data or training and evaluate again; gates are not edited after training",
        )
    _refuse_stale_comparisons(registry, task, run.run_id, evaluation.summary.get("gates", []))
    lock = registry.gold_lock(task)
    if lock is None or lock.gold_hash != evaluation.gold_hash:
        raise GoldSetChanged(
            f"run {run.run_id} was evaluated on gold set {evaluation.gold_hash[:12]}, but the locked gold set is "
            f"{lock.gold_hash[:12] if lock else 'none'}",
            hint="evaluate again on the locked gold set: `slmkit eval`",
        )
    if run.adapter_digest is None:
        raise StageError(f"run {run.run_id} has no adapter")
    problems = registry.store.verify(run.adapter_digest) + registry.store.verify(evaluation.digest)
    if problems:
        raise RegistryError("cannot release: " + "; ".join(problems), hint="train and evaluate again")
    report = json.loads(registry.store.path(evaluation.digest).read_text(encoding="utf-8"))
    return Candidate(run, evaluation, run.adapter_digest, report)


def _refuse_stale_comparisons(registry: Registry, task: str, run_id: str, gates: list[dict[str, Any]]) -> None:
    """A no_regression_vs gate passed against the release then behind its alias; refuse when the
    alias has moved since, so a candidate is never released on a comparison with a stale release."""
    for gate in gates:
        alias = parse_gate(gate["gate"]).vs_alias
        if alias is None:
            continue
        current = registry.current(task, alias)
        now = current.ref if current is not None else None
        if now != gate.get("compared_with"):
            raise GateFailed(
                f"run {run_id} passed '{gate['gate']}' against {gate.get('compared_with') or 'no release'}, "
                f"but {task}@{alias} is now {now or 'unset'}",
                hint=f"evaluate again to compare with the current release: `slmkit eval --run {run_id}`",
            )


def _describe_gate(gate: dict[str, Any]) -> str:
    observed = gate.get("observed")
    ci = gate.get("ci95") or [None, None]
    if gate.get("compared_with") and observed is not None:
        return (
            f"{gate['gate']}: difference {observed:+.3f} vs {gate['compared_with']} "
            f"(95% CI {ci[0]:+.3f} to {ci[1]:+.3f}); its lower bound needs >= {gate['threshold']:+.3f}"
        )
    if gate.get("reason") and observed is None:
        return f"{gate['gate']}: {gate['reason']}"
    shown = (
        "not computed"
        if observed is None or (isinstance(observed, float) and math.isnan(observed))
        else (f"{observed:.3f}" + (f" (95% CI {ci[0]:.3f}-{ci[1]:.3f})" if ci[0] is not None else ""))
    )
    return f"{gate['gate']}: observed {shown}, needs {gate['threshold']:.3f}"
