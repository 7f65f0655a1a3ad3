"""`slmkit eval`: the base model and the adapter on the locked gold set, side by side, gated.

The task spec and the gates come from the training run's recorded config, not from today's
slmkit.yaml: gates are set before training, and editing them afterwards cannot pass a run.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from slmkit import atomic
from slmkit.config import ProjectConfig
from slmkit.data import open_dataset
from slmkit.errors import StageError
from slmkit.eval.answer import Mode, answer, refuse_low_confidence
from slmkit.eval.calibrate import Calibration, calibrate, coverage_line, sample_examples
from slmkit.eval.compare import Regression, regression_against
from slmkit.eval.confidence import confidence_fields
from slmkit.eval.forgetting import check_forgetting
from slmkit.eval.gates import GateResult, check_gates
from slmkit.eval.judge import run_judge
from slmkit.eval.metrics import Metric, confusion, exact, latency, score
from slmkit.eval.report import write_html
from slmkit.models import load_model, load_tokenizer
from slmkit.models.constrain import ConstraintUnsupported, SchemaConstraint, answer_token_bound
from slmkit.models.labels import LabelField
from slmkit.models.precision import weights_dtype
from slmkit.models.resolve import resolve_recorded
from slmkit.registry import Registry
from slmkit.task import Parsed, Task

HEADLINE = ("schema_validity", "exact_match", "label_accuracy", "label_macro_f1")


@dataclass
class EvalResult:
    run_id: str
    report_path: Path
    report_digest: str
    passed: bool
    gates: list[GateResult]
    metrics: dict[str, dict[str, Metric]] = field(default_factory=dict)  # side ("base", "adapter"...) -> metrics
    items: int = 0
    regressions: dict[str, Regression] = field(default_factory=dict)  # alias -> comparison with its release
    notes: list[str] = field(default_factory=list)  # judge and forgetting lines, under the metrics

    def summary_lines(self) -> list[str]:
        lines = [f"gold items: {self.items}   report: {self.report_path}"]
        names = [m for m in HEADLINE if m in self.metrics.get("adapter", {})]
        sides = list(self.metrics)  # base, adapter, the other decoding of the adapter, served
        widths = [max(10, len(s) + 2) for s in sides]
        lines.append(f"{'metric':<18}" + "".join(f"{s:>{w}}" for s, w in zip(sides, widths, strict=True)))
        for name in names:
            values = [self.metrics[s].get(name) for s in sides]
            lines.append(
                f"{name:<18}"
                + "".join(
                    f"{v.value:>{w}.3f}" if v is not None else f"{'-':>{w}}"
                    for v, w in zip(values, widths, strict=True)
                )
            )
        lines.extend(self.notes)
        for regression in self.regressions.values():
            lines.extend(regression.lines())
        lines.extend(g.line() for g in self.gates)
        lines.append("gates: PASSED" if self.passed else "gates: FAILED - release is blocked")
        return lines


def run_eval(
    config: ProjectConfig,
    *,
    registry: Registry | None = None,
    run_id: str | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    via: str | None = None,
    via_model: str | None = None,
) -> EvalResult:
    """Evaluate a training run (the latest by default) on its dataset's locked gold set.

    `via` (an OpenAI-compatible base URL, e.g. a running `slmkit serve`) also sends every gold
    input to that server for `via_model` (default: the task at release.alias) and reports its
    answers as the `served` side, with their agreement with the offline adapter's.
    """
    registry = registry or Registry(config.state_dir)
    run = registry.get_run(run_id, task=config.task.name)
    trained = ProjectConfig.model_validate(_without_root(run.config))
    trained._root = config.root
    task = Task(trained.task, trained.task.output_schema or config.output_schema())
    if trained.eval.gates != config.eval.gates:
        log(
            "note: the gates in slmkit.yaml differ from those recorded when this run trained; "
            "the recorded ones apply (gates are fixed before training)"
        )
    dataset = open_dataset(config, registry, run.dataset_version)  # refuses a changed gold set
    gold_rows = sample_examples(dataset.examples("gold"), config.eval.max_items, task, seed=config.data.split.seed)
    if config.eval.max_items is not None:
        log(coverage_line("gold items", gold_rows, dataset.examples("gold"), task))

    base = resolve_recorded(run.base_model, config.root, user=f"run {run.run_id}")
    tokenizer = load_tokenizer(base)
    trained_prompt = run.metrics.get("prompt_sha256")
    if trained_prompt and task.prompt_fingerprint(tokenizer) != trained_prompt:
        raise StageError(
            f"the prompt rendered for evaluation differs from the one run {run.run_id} trained with",
            hint="the base model's chat template changed since training; retrain on the current base model",
        )
    prompts = [
        task.prompt_text(tokenizer, task.model_input(row.input, row.prompt_context), row.history) for row in gold_rows
    ]
    # Each row decodes under its own schema: a retrieval task's citations only of that row's chunks.
    row_schemas: Any = (
        [task.decoding_schema(row.prompt_context) for row in gold_rows] if task.cfg.retrieval else task.schema
    )
    gold = [row.output for row in gold_rows]
    if run.adapter_digest is None:
        raise StageError(f"run {run.run_id} recorded no adapter", hint="train again")
    adapter_dir = registry.store.path(run.adapter_digest)

    # As serving will load it: the recorded setting, resolved for this machine.
    dtype = weights_dtype(trained.eval.precision)
    # As serving will decode it: under the schema when serve.constrained, with the answer-length
    # bound the schema implies (never above eval.max_new_tokens). The base decodes freely.
    enforceable = (config.serve.constrained or config.eval.decoding == "both") and _enforceable(tokenizer, task, log)
    served_constrained = config.serve.constrained and enforceable
    bound = answer_token_bound(task.schema, tokenizer)
    adapter_tokens = min(config.eval.max_new_tokens, bound) if bound else config.eval.max_new_tokens
    if bound and config.eval.max_new_tokens < bound:
        log(
            f"warning: eval.max_new_tokens={config.eval.max_new_tokens} is below the longest answer the schema "
            f"allows (~{bound} tokens): long answers will be cut off and count as invalid"
        )
    # As serving will choose the label: by label scoring when on and the task has a label field.
    scoring = config.serve.label_scoring and LabelField.of(task) is not None
    served_mode: Mode = "scored" if scoring else "constrained" if served_constrained else "free"
    sides: dict[str, tuple[Path | None, Mode]] = {}
    if config.eval.compare_base:
        sides["base"] = (None, "free")
    sides["adapter"] = (adapter_dir, served_mode)
    if config.eval.decoding == "both" and served_mode != "free":
        sides["adapter_free"] = (adapter_dir, "free")
    elif config.eval.decoding == "both" and enforceable:
        sides["adapter_constrained"] = (adapter_dir, "constrained")
    predictions: dict[str, list[Parsed]] = {}
    texts: dict[str, list[str]] = {}
    confidences: dict[str, list[dict[str, Any]]] = {}
    timing: dict[str, dict[str, Any]] = {}
    calibration: Calibration | None = None
    model, loaded_with = None, object()
    for side, (adapter, mode) in sides.items():
        if loaded_with != adapter:  # the two adapter sides share one load
            del model
            model, loaded_with = load_model(base, adapter=adapter, merge=True, dtype=dtype), adapter
        began = time.perf_counter()
        settings: dict[str, Any] = {
            "mode": mode,
            "constrained": served_constrained,
            "max_new_tokens": adapter_tokens if adapter is not None else config.eval.max_new_tokens,
            "batch_size": config.eval.batch_size,
        }
        outputs = answer(model, tokenizer, task, prompts, **settings, schema=row_schemas)
        seconds = time.perf_counter() - began
        if side == "adapter" and mode == "scored":
            calibration = calibrate(config, dataset, task, tokenizer, outputs, gold, settings, model, log)
            refuse_low_confidence(task, outputs, calibration.applied_threshold)
        texts[side] = [o.text for o in outputs]
        confidences[side] = [confidence_fields(o.token_logprobs, o.label) for o in outputs]
        predictions[side] = [task.parse(o.text) for o in outputs]
        timing[side] = {
            "seconds": round(seconds, 2),
            "items_per_s": round(len(prompts) / seconds, 2) if seconds else 0.0,
            "completion_tokens": sum(o.completion_tokens for o in outputs),
            # Per item: the wall time of the batch it was answered in (what a caller of a batch waits).
            "latency": {k: round(v, 4) for k, v in latency([o.seconds for o in outputs]).items()},
        }
        timing[side]["constrained"] = mode == "constrained" or (mode == "scored" and served_constrained)
        timing[side]["decoding"] = mode
        if progress:
            how = {
                "scored": "label scoring" + (", the rest under the schema" if served_constrained else ""),
                "constrained": "under the schema",
                "free": "free",
            }[mode]
            log(f"  {side}: {len(prompts)} gold items in {seconds:.1f}s ({dtype} weights, {how})")
        if side == "adapter" and calibration is not None and progress:
            log(calibration.line())
    del model

    served_summary: dict[str, Any] | None = None
    if via:
        served_summary = _served_side(
            via, via_model or f"{task.name}@{config.release.alias}", gold_rows, task, texts, predictions, timing, log
        )

    # Normalizers change what counts as a match, so like the gates they are the ones recorded at training.
    normalize, rounds = trained.eval.normalize, config.eval.bootstrap_rounds
    metrics = {
        side: score(task, gold, preds, normalize=normalize, rounds=rounds) for side, preds in predictions.items()
    }
    parsed_gates = trained.eval.parsed_gates()
    aliases = dict.fromkeys([config.release.alias, *(g.vs_alias for g in parsed_gates if g.vs_alias)])
    ids = [str(row.id) for row in gold_rows]
    judge, judged = config.eval.judge, None
    if judge.endpoint is not None:  # next to the task metrics, never alone; gates may read judge_score
        labels = config.resolve_path(judge.labels_file) if judge.labels_file else None
        inputs = [row.input for row in gold_rows]
        judged = run_judge(
            judge,
            task_metrics=metrics,
            ids=ids,
            inputs=inputs,
            gold=gold,
            predictions=predictions,
            labels_path=labels,
            rounds=rounds,
        )
        for side, summary in judged.summaries.items():
            metrics[side]["judge_score"] = summary.mean
    forgetting = check_forgetting(config, base, tokenizer, adapter_dir, dtype) if config.eval.forgetting else None
    regressions = {
        alias: regression_against(
            registry,
            task,
            alias,
            ids,
            gold,
            predictions["adapter"],
            normalize=normalize,
            rounds=rounds,
            label_scoring=scoring,
        )
        for alias in aliases
    }
    gates = check_gates(parsed_gates, metrics["adapter"], metrics.get("base"), regressions)
    passed = all(g.passed for g in gates)

    report = {
        "kind": "slmkit.eval_report",
        "task": task.name,
        "run_id": run.run_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "dataset_version": dataset.version,
        "gold_hash": dataset.gold_hash,
        "items": len(gold_rows),
        "label_field": task.cfg.label_field,
        "engine": "transformers",
        # Enough to answer again exactly so: a rollback rehearsal reloads the release with these.
        "decoding": {
            "greedy": True,
            "constrained": served_constrained,
            "label_scoring": scoring,
            "refusal_threshold": calibration.applied_threshold if calibration else 0.0,
            "max_new_tokens": adapter_tokens,
            "schema_token_bound": bound,
            "dtype": dtype,
            "merge": True,
            "batch_size": config.eval.batch_size,
        },
        "base_model": run.base_model,
        "adapter_digest": run.adapter_digest,
        "chat_template_sha256": hashlib.sha256(str(tokenizer.chat_template).encode()).hexdigest(),
        "metrics": {side: {k: v.as_dict() for k, v in m.items()} for side, m in metrics.items()},
        "confusion": {side: confusion(task, gold, preds) for side, preds in predictions.items()},
        "gates": [g.as_dict() for g in gates],
        "passed": passed,
        "regression": {alias: r.as_dict() for alias, r in regressions.items()},
        "served": served_summary,
        "timing": timing,
        "judge": judged.section if judged else None,
        "label_scoring": calibration.as_dict() if calibration else None,
        "forgetting": forgetting.as_dict() if forgetting else None,
        "predictions": [
            {
                "id": row.id,
                "input": row.input,
                "gold": row.output,
                **({"tags": list(row.tags)} if row.tags else {}),
                **{
                    side: {
                        "text": texts[side][i],
                        "valid": predictions[side][i].valid,
                        "exact": exact(task, predictions[side][i], row.output),
                        **(confidences[side][i] if side in confidences else {}),
                    }
                    for side in predictions
                },
            }
            for i, row in enumerate(gold_rows)
        ],
    }
    out_dir = config.state_dir / "runs" / run.run_id / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    report_path = out_dir / "report.json"
    # Atomic: a crash while writing a new report leaves the previous one whole, never a torn file.
    atomic.write_json(report_path, _finite(report), ensure_ascii=False)
    write_html(report, out_dir / "report.html")
    digest = registry.store.put_file(report_path)
    registry.record_artifact(digest, "eval_report", report_path.stat().st_size, {"run_id": run.run_id})
    registry.record_eval(
        task.name,
        run.run_id,
        digest,
        dataset.gold_hash,
        passed,
        {"metrics": report["metrics"], "gates": report["gates"], "items": len(gold_rows)},
    )
    notes = [*(judged.lines() if judged else []), *([forgetting.line()] if forgetting else [])]
    return EvalResult(run.run_id, report_path, digest, passed, gates, metrics, len(gold_rows), regressions, notes)


def _served_side(
    url: str,
    model: str,
    gold_rows: list[Any],
    task: Task,
    texts: dict[str, list[str]],
    predictions: dict[str, list[Parsed]],
    timing: dict[str, dict[str, Any]],
    log: Callable[[str], None],
) -> dict[str, Any]:
    """The gold set answered through a server, as the `served` side; how often it agrees with the adapter."""
    from slmkit.eval.rehearse import same_answer
    from slmkit.eval.served import served_answers

    began = time.perf_counter()
    answers = served_answers(url, model, [(row.input, list(row.history)) for row in gold_rows])
    seconds = time.perf_counter() - began
    texts["served"] = answers.texts
    predictions["served"] = [task.parse(text) for text in answers.texts]
    agree = sum(same_answer(task, a, b) for a, b in zip(texts["adapter"], answers.texts, strict=True))
    releases = sorted({r for r in answers.answered_by if r})
    summary = {
        "url": url,
        "model": model,
        "answered_by": releases,
        "failed": sum(1 for e in answers.errors if e),
        "first_error": next((e for e in answers.errors if e), None),
        "agreement_with_adapter": round(agree / max(len(gold_rows), 1), 4),
    }
    timing["served"] = {
        "seconds": round(seconds, 2),
        "items_per_s": round(len(gold_rows) / seconds, 2) if seconds else 0.0,
    }
    log(
        f"  served: {len(gold_rows)} gold items through {url} ({', '.join(releases) or model}) in {seconds:.1f}s; "
        f"the same answer as the offline adapter on {agree}/{len(gold_rows)}"
    )
    return summary


def _enforceable(tokenizer: Any, task: Task, log: Callable[[str], None]) -> bool:
    """Whether constrained decoding can enforce the task's schema (compiled for the tokenizer alone)."""
    try:
        SchemaConstraint(task.schema, tokenizer, len(tokenizer), [tokenizer.eos_token_id])
    except ConstraintUnsupported as exc:
        log(f"note: the output schema cannot be enforced while decoding ({exc}); evaluating free decoding only")
        return False
    return True


def _without_root(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if not k.startswith("_")}


def _finite(value: Any) -> Any:
    """NaN is not JSON: write null for a metric that could not be computed."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
