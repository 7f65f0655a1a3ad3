"""The only module that chains stages: build -> train -> eval -> release, and the demo."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmkit.config import CONFIG_FILE, STATE_DIR, ProjectConfig, load_config
from slmkit.errors import GateFailed, SlmkitError
from slmkit.registry import NewEvidence, Registry, Release
from slmkit.registry.checklist import KNOWN_AT_RELEASE, Checklist, evaluate_checklist

Log = Callable[[str], None]


@dataclass
class PipelineResult:
    config: ProjectConfig
    data: Any
    train: Any
    eval: Any
    release: Any | None
    seconds: dict[str, float] = field(default_factory=dict)


def run_pipeline(config: ProjectConfig, *, note: str = "", progress: bool = True, log: Log = print) -> PipelineResult:
    """Build the dataset, train, evaluate and release when every gate passes.

    A failed gate is not an exception here: the result says so and `release` stays None, so
    the caller decides whether that ends the job (the CLI turns it into a non-zero exit).
    """
    from slmkit.data import run_data_build
    from slmkit.eval import run_eval
    from slmkit.train import run_train

    seconds: dict[str, float] = {}

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        began = time.perf_counter()
        try:
            return fn()
        finally:
            seconds[name] = time.perf_counter() - began

    log("== data build")
    data = timed("data", lambda: run_data_build(config))
    _print(data.summary_lines(), log)
    log("== train")
    trained = timed("train", lambda: run_train(config, progress=progress, log=log))
    _print(trained.summary_lines(), log)
    log("== eval (base model vs adapter on the locked gold set)")
    evaluated = timed("eval", lambda: run_eval(config, run_id=trained.run_id, progress=progress, log=log))
    _print(evaluated.summary_lines(), log)
    release = None
    if evaluated.passed:
        log("== release")
        release = timed("release", lambda: run_release(config, run_id=trained.run_id, note=note, log=log))
        log(f"released {release.name}@{release.version} -> {', '.join(release.aliases)}")
    return PipelineResult(config, data, trained, evaluated, release, seconds)


def run_release(
    config: ProjectConfig,
    *,
    registry: Registry | None = None,
    run_id: str | None = None,
    note: str = "",
    alias: str | None = None,
    log: Log = print,
) -> Release:
    """Gates, then the production checklist, then a rehearsed rollback, then the release record.

    Refuses a run whose gates failed or whose gold set is not the locked one (always), and, when
    the release moves the production alias (release.alias), one failing a `release.blocking`
    item. The cheap items are judged before any model loads; the rehearsal's evidence and the
    provenance go into the release record in the transaction that moves the alias.
    """
    from slmkit.eval.rehearse import rehearse_rollback
    from slmkit.monitor.rules import check_rules
    from slmkit.provenance import release_provenance
    from slmkit.registry.publish import check_candidate

    registry = registry or Registry(config.state_dir)
    name, alias = config.task.name, alias or config.release.alias
    candidate = check_candidate(config, registry, run_id)
    # Latency and review evidence attach to a release after it exists: `slmkit check` judges them.
    enforced = [k for k in config.release.blocking if k in KNOWN_AT_RELEASE] if alias == config.release.alias else []
    alerts = check_rules(  # builds the input drift reference the first time, so a server finds it ready
        config,
        registry,
        subject=candidate.subject,
        recorded_config=candidate.run.config,
        eval_report_digest=candidate.evaluation.digest,
        dataset_version=candidate.run.dataset_version,
    )

    def checklist(rehearsal: NewEvidence | None) -> Checklist:
        return evaluate_checklist(
            registry,
            f"{candidate.subject} -> {name}@{alias}",
            task=name,
            eval_report_digest=candidate.evaluation.digest,
            dataset_version=candidate.run.dataset_version,
            gold_hash=candidate.evaluation.gold_hash,
            evidence={"rehearsal": rehearsal},
            alerts=alerts,
            blocking=enforced,
        )

    blocked = f"release to {name}@{alias} blocked by the production checklist"
    checklist(None).refuse_blockers(blocked, among=[k for k in enforced if k != "rollback"])
    previous = registry.current(name, alias)
    evidence = None
    # rehearsal_items 0 skips the rehearsal (the checklist then says so), but a first release has
    # nothing to roll back to either way, and says that.
    if previous is None or config.release.rehearsal_items > 0:
        if previous is not None:
            log(f"rehearsing a rollback to {previous.ref} on {config.release.rehearsal_items} of its gold items")
        rehearsal = rehearse_rollback(
            config,
            registry,
            previous,
            alias=alias,
            items=config.release.rehearsal_items,
            min_agreement=config.release.rehearsal_min_agreement,
        )
        evidence = rehearsal.evidence()
    final = checklist(evidence)
    _print(final.lines(), log)
    final.refuse_blockers(blocked)
    release = registry.create_release(
        name=name,
        run_id=candidate.run.run_id,
        adapter_digest=candidate.adapter_digest,
        base_model=candidate.run.base_model,
        dataset_version=candidate.run.dataset_version,
        gold_hash=candidate.evaluation.gold_hash,
        eval_report_digest=candidate.evaluation.digest,
        config=candidate.run.config,
        note=note,
        alias=alias,
        provenance=release_provenance(config, registry, candidate),
        evidence=[evidence] if evidence is not None else [],
        expected_parent=previous.version if previous is not None else None,
    )
    mirror_if_configured(config, registry, log)
    return release


def mirror_if_configured(config: ProjectConfig, registry: Registry, log: Log = print) -> None:
    """Copy the task's releases and aliases to `release.mlflow_uri`, when one is set.

    The local registry is the record: a mirror that fails is reported, not fatal, and the next
    release, rollback or `slmkit releases mirror` catches it up.
    """
    uri = config.release.mlflow_uri
    if not uri:
        return
    from slmkit.registry.mirror import mirror_to_mlflow

    try:
        result = mirror_to_mlflow(registry, config.task.name, uri, log=log)
    except SlmkitError as exc:
        log(
            f"warning: the MLflow mirror was not updated ({exc.message}); the release is recorded here, "
            "run `slmkit releases mirror` once MLflow is reachable"
        )
        return
    log(f"mirrored to MLflow: {', '.join(f'{a} -> v{v}' for a, v in sorted(result.aliases.items())) or 'no aliases'}")


def rollback_alias(
    config: ProjectConfig,
    *,
    to: int | None = None,
    alias: str | None = None,
    reason: str = "",
    actor: str | None = None,
    log: Log = print,
) -> tuple[int, int]:
    """Move release.alias (or `alias`) back to the previous release, or to version `to`; audited, mirrored.

    `slmkit rollback` and the console both call this; a running server follows on its next request.
    """
    registry = Registry(config.state_dir)
    try:
        moved = registry.rollback(
            config.task.name, alias=alias or config.release.alias, to=to, reason=reason, actor=actor
        )
        mirror_if_configured(config, registry, log=log)
    finally:
        registry.close()
    return moved


def promote_alias(
    config: ProjectConfig,
    version: int,
    *,
    alias: str | None = None,
    reason: str = "",
    actor: str | None = None,
    log: Log = print,
) -> tuple[int | None, int]:
    """Point release.alias (or `alias`) at an existing release, forward or back; audited, mirrored.

    Refused (ReleaseBlocked) when a blocking item of that release's production checklist is not
    met, as `slmkit release` refuses a new one. Returns (from version or None, to version).
    """
    from slmkit.monitor.rules import release_rule_checks
    from slmkit.registry.checklist import release_checklist

    alias = alias or config.release.alias
    name = config.task.name
    registry = Registry(config.state_dir)
    try:
        target = registry.get_release(name, version)
        checklist = release_checklist(
            registry,
            target,
            alerts=release_rule_checks(config, registry, target, quick=True),
            blocking=config.release.blocking,
        )
        checklist.refuse_blockers(f"{target.ref} cannot move {name}@{alias}")
        before = registry.aliases(name).get(alias)
        registry.set_alias(name, alias, version, reason=reason or "promote", actor=actor)
        mirror_if_configured(config, registry, log=log)
    finally:
        registry.close()
    return before, version


def run_demo(example: Path, workdir: Path, *, log: Log = print) -> PipelineResult:
    """Copy the example project into `workdir`, run the pipeline, serve the release, ask it."""
    began = time.perf_counter()
    if not (example / CONFIG_FILE).exists():
        raise SlmkitError(
            f"no example project at {example}",
            hint="run `slmkit demo` from the slmkit checkout or pass the path of examples/support-tickets",
        )
    target = workdir / example.name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(example, target, ignore=shutil.ignore_patterns(STATE_DIR, "__pycache__"))
    config = load_config(target)
    log(f"demo project: {target}  (base model {config.base_model})")
    result = run_pipeline(config, note="slmkit demo", log=log)
    if result.release is None:
        failed = ", ".join(g.gate for g in result.eval.gates if not g.passed)
        raise GateFailed(f"the adapter failed {failed}; nothing was released", hint=f"see {result.eval.report_path}")

    log("== serve (OpenAI-compatible API, official openai client)")
    serve_began = time.perf_counter()
    answers = _ask_server(config, _demo_requests(target, result), log)
    result.seconds["serve"] = time.perf_counter() - serve_began
    result.seconds["total"] = time.perf_counter() - began
    _summary(result, answers, log)
    return result


def _ask_server(config: ProjectConfig, requests: list[dict[str, Any]], log: Log) -> list[dict[str, Any]]:
    from openai import OpenAI

    from slmkit.serve import start_server

    answers = []
    with start_server(config, port=0) as handle:
        log(f"server up at {handle.url}")
        client = OpenAI(base_url=handle.url, api_key="local-demo", max_retries=0)
        log("models: " + ", ".join(m.id for m in client.models.list()))
        for fields in requests:
            response = client.chat.completions.create(
                model=config.task.name,
                messages=[{"role": "user", "content": json.dumps(fields, ensure_ascii=False)}],
            )
            extras = response.model_extra.get("slmkit", {}) if response.model_extra else {}
            answers.append(
                {
                    "input": fields,
                    "answer": response.choices[0].message.content,
                    "model": response.model,
                    "slmkit": extras,
                }
            )
            log(f"> {_one_line(fields)}")
            log(
                f"< {response.choices[0].message.content}   [{response.model}"
                + (", escalate" if extras.get("escalate") else "")
                + (", guard replaced" if extras.get("guard", {}).get("replaced") else "")
                + "]"
            )
    log("server stopped")
    return answers


def _demo_requests(project: Path, result: PipelineResult) -> list[dict[str, Any]]:
    """The example's requests.jsonl (unlabelled tickets), else three gold inputs."""
    path = project / "requests.jsonl"
    if path.exists():
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    from slmkit.data import open_dataset

    rows = open_dataset(result.config, Registry(result.config.state_dir)).examples("gold")[:3]
    return [row.fields for row in rows]


def _summary(result: PipelineResult, answers: list[dict[str, Any]], log: Log) -> None:
    counts = result.data.counts
    metrics = result.eval.metrics
    log("")
    log("== summary")
    log(
        f"dataset {result.data.version}: {counts['input']} rows in -> {counts['train']} train, "
        f"{counts['validation']} validation, {counts['gold']} gold, {counts['rejected']} rejected"
    )
    log(
        f"training: {result.train.metrics['steps']} steps, {result.train.metrics['tokens_per_s']:.0f} tokens/s, "
        f"validation loss {result.train.metrics['initial_val_loss']:.3f} -> {result.train.metrics['best_val_loss']:.3f}"
    )
    log(f"{'gold set metric':<18}{'base':>8}{'adapter':>9}")
    for name in ("schema_validity", "exact_match", "label_accuracy", "label_macro_f1"):
        if name in metrics.get("adapter", {}):
            base = metrics["base"][name].value if "base" in metrics else float("nan")
            log(f"{name:<18}{base:>8.3f}{metrics['adapter'][name].value:>9.3f}")
    rel = result.release
    assert rel is not None  # the demo stops before serving when nothing was released
    log(f"release: {rel.name}@{rel.version} (production), adapter sha256:{rel.adapter_digest[:12]}")
    if answers:
        log(f"served answer: {answers[0]['answer']}")
    timing = ", ".join(f"{k} {v:.0f}s" for k, v in result.seconds.items())
    log(f"time: {timing}")


def _print(lines: list[str], log: Log) -> None:
    for line in lines:
        log(line)


def _one_line(fields: dict[str, Any]) -> str:
    text = " | ".join(str(v) for v in fields.values())
    text = " ".join(text.split())
    return text if len(text) <= 110 else text[:107] + "..."
