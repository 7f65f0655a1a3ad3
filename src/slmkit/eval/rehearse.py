"""Rehearse a rollback before an alias moves: the release it points at now is loaded as a rollback
would load it (its base model, its adapter, the dtype, merge and answer length its eval recorded)
and answers a sample of its gold items again. The answers must be the ones its eval recorded.

A rollback that has never been tried is a hope. This proves, at the last moment it is cheap to
prove, that the previous release still loads from the store and still answers as it was graded.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any

from slmkit.config import ProjectConfig
from slmkit.data.dataset import read_examples, verify_gold_file
from slmkit.errors import SlmkitError, StageError
from slmkit.registry import NewEvidence, Registry, Release
from slmkit.task import Task

MAX_LISTED = 50  # differing ids kept in the evidence; the counts stay exact


@dataclass(frozen=True)
class Rehearsal:
    """What the rehearsal of a rollback to `target` found; `target` None: nothing to roll back to."""

    alias: str
    target: str | None
    min_agreement: float
    items: int = 0
    matched: int = 0  # parsed answers equal to the recorded ones (the text, when that is not JSON)
    text_identical: int = 0
    seconds: float = 0.0
    differed: list[str] = field(default_factory=list)
    decoding: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # why the target could not be loaded or asked

    @property
    def agreement(self) -> float | None:
        return self.matched / self.items if self.items else None

    @property
    def passed(self) -> bool | None:
        if self.target is None:
            return None
        agreement = self.agreement
        return self.error is None and agreement is not None and agreement >= self.min_agreement

    def summary(self) -> str:
        if self.target is None:
            return f"first release behind '{self.alias}': nothing to roll back to"
        if self.error is not None:
            return f"rollback to {self.target} failed: {self.error}"
        agreement = self.agreement or 0.0
        verdict = ">=" if self.passed else "<"
        listed = f"; differed: {', '.join(self.differed[:5])}" if self.differed else ""
        return (
            f"{self.matched}/{self.items} answers of {self.target} matched its eval "
            f"(agreement {agreement:.3f} {verdict} {self.min_agreement:.3f}; {self.text_identical} text-identical) "
            f"in {self.seconds:.1f}s{listed}"
        )

    def evidence(self) -> NewEvidence:
        """The evidence attached to the new release."""
        return NewEvidence(
            "rehearsal",
            self.passed,
            {
                "summary": self.summary(),
                "alias": self.alias,
                "target": self.target,
                "items": self.items,
                "matched": self.matched,
                "text_identical": self.text_identical,
                "agreement": self.agreement,
                "min_agreement": self.min_agreement,
                "seconds": round(self.seconds, 2),
                "differed": self.differed[:MAX_LISTED],
                "decoding": self.decoding,
                "error": self.error,
            },
        )


def rehearse_rollback(
    config: ProjectConfig,
    registry: Registry,
    previous: Release | None,
    *,
    alias: str,
    items: int,
    min_agreement: float,
) -> Rehearsal:
    """Load `previous` (the release `alias` points at now) and answer `items` of its gold items
    (a fixed sample); None: a first release, nothing to roll back to.

    A target that cannot be loaded or asked is a failed rehearsal, not an exception: the
    caller decides whether that blocks the release.
    """
    if previous is None:
        return Rehearsal(alias, None, min_agreement)
    began = time.perf_counter()
    try:
        return _answer_again(config, registry, previous, alias, items, min_agreement, began)
    except SlmkitError as exc:
        return Rehearsal(alias, previous.ref, min_agreement, seconds=time.perf_counter() - began, error=exc.message)


def _answer_again(
    config: ProjectConfig,
    registry: Registry,
    release: Release,
    alias: str,
    items: int,
    min_agreement: float,
    began: float,
) -> Rehearsal:
    from slmkit.eval.answer import Mode, answer, refuse_low_confidence
    from slmkit.models import load_model, load_tokenizer
    from slmkit.models.resolve import resolve_recorded

    report = _stored_report(registry, release)
    trained = ProjectConfig.model_validate({k: v for k, v in release.config.items() if not k.startswith("_")})
    task = Task(trained.task, trained.task.output_schema or config.output_schema())
    recorded = decoding(report, trained)
    sample = sample_items(_gold_with_predictions(registry, release, report), items)

    base = resolve_recorded(release.base_model, config.root, user=release.ref)
    problems = registry.store.verify(release.adapter_digest)
    if problems:
        raise StageError(f"its adapter {'; '.join(problems)}")
    tokenizer = load_tokenizer(base)
    model = load_model(
        base, adapter=registry.store.path(release.adapter_digest), merge=recorded["merge"], dtype=recorded["dtype"]
    )
    prompts = [
        task.prompt_text(tokenizer, task.model_input(row.input, row.prompt_context), row.history) for row, _ in sample
    ]
    mode: Mode = "scored" if recorded["label_scoring"] else "constrained" if recorded["constrained"] else "free"
    outputs = answer(
        model,
        tokenizer,
        task,
        prompts,
        mode=mode,
        constrained=recorded["constrained"],
        max_new_tokens=recorded["max_new_tokens"],
        batch_size=recorded["batch_size"],
        logprobs=False,
        schema=[task.decoding_schema(row.prompt_context) for row, _ in sample] if task.cfg.retrieval else None,
    )
    refuse_low_confidence(task, outputs, recorded["refusal_threshold"])
    matched = identical = 0
    differed = []
    for (row, prediction), output in zip(sample, outputs, strict=True):
        before = prediction["adapter"]["text"]
        identical += output.text == before
        if same_answer(task, before, output.text):
            matched += 1
        else:
            differed.append(row.id)
    return Rehearsal(
        alias,
        release.ref,
        min_agreement,
        items=len(sample),
        matched=matched,
        text_identical=identical,
        seconds=time.perf_counter() - began,
        differed=differed,
        decoding=recorded,
    )


def same_answer(task: Task, recorded: str, now: str) -> bool:
    """Equal parsed JSON (key order and spacing aside); equal text when the recorded one is not JSON."""
    before, after = task.parse(recorded), task.parse(now)
    if before.is_json:
        return after.is_json and before.value == after.value
    return recorded == now


def decoding(report: dict[str, Any], trained: ProjectConfig) -> dict[str, Any]:
    """How the release's eval generated: dtype and answer length as recorded; merge and batch size
    as recorded by newer reports (older ones merged and batched by the run's eval settings)."""
    recorded = report.get("decoding") or {}
    if "dtype" not in recorded or "max_new_tokens" not in recorded:
        raise StageError("its eval report records no decoding settings (dtype, max_new_tokens)")
    return {
        "dtype": recorded["dtype"],
        "max_new_tokens": int(recorded["max_new_tokens"]),
        "merge": bool(recorded.get("merge", True)),
        "batch_size": int(recorded.get("batch_size") or trained.eval.batch_size),
        "constrained": bool(recorded.get("constrained", False)),  # older reports decoded freely
        "label_scoring": bool(recorded.get("label_scoring", False)),  # older reports decoded the label
        "refusal_threshold": float(recorded.get("refusal_threshold") or 0.0),
    }


def sample_items(pairs: list[tuple[Any, dict[str, Any]]], n: int) -> list[tuple[Any, dict[str, Any]]]:
    """A fixed sample of `n`: the items whose id hashes lowest, so every rehearsal of a release asks
    the same ones, spread over the gold set rather than its first rows."""
    ranked = sorted(pairs, key=lambda pair: hashlib.sha256(str(pair[1]["id"]).encode()).hexdigest())
    return ranked[:n]


def _stored_report(registry: Registry, release: Release) -> dict[str, Any]:
    problems = registry.store.verify(release.eval_report_digest)
    if problems:
        raise StageError(f"its eval report {'; '.join(problems)}")
    report: dict[str, Any] = json.loads(registry.store.path(release.eval_report_digest).read_text(encoding="utf-8"))
    return report


def _gold_with_predictions(
    registry: Registry, release: Release, report: dict[str, Any]
) -> list[tuple[Any, dict[str, Any]]]:
    """(gold example, recorded prediction) pairs, matched by id: the report holds every gold row
    or a sample of them (eval.max_items)."""
    dataset = registry.get_dataset(release.dataset_version)
    gold_file = registry.store.path(dataset.digest) / "gold.jsonl"
    verify_gold_file(gold_file, release.gold_hash)
    rows = {str(row.id): row for row in read_examples(gold_file)}
    predictions = [p for p in report.get("predictions", []) if "adapter" in p]
    if not predictions or len(predictions) > len(rows):
        raise StageError(f"its eval report holds {len(predictions)} adapter answers for {len(rows)} gold rows")
    unknown = [p["id"] for p in predictions if str(p["id"]) not in rows]
    if unknown:
        raise StageError(f"its eval report's items do not line up with its gold set (first: {unknown[0]})")
    return [(rows[str(p["id"])], p) for p in predictions]
