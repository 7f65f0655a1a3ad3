"""Do the alert rules of slmkit.yaml really evaluate for a release? (The checklist's "alerts" item.)

A rule that parses is not yet a rule that works: label drift needs the release's answers on the
gold set, confidence needs an engine that reports token probabilities, input drift needs the
embedded training inputs. `check_rules` builds each rule's references for the release (or the
run about to become one), then evaluates the rule on the release's current window of traffic
exactly as the server's timer would, and says for each rule whether it evaluates and what it
saw. Building the input drift reference here also means the server finds it ready.

`quick=True` (the web console, promoting an alias) judges the prerequisites only: it reads a
stored input reference but builds none (a training split to build one from is enough), and does
not compute the rules on traffic, so it answers in milliseconds.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from slmkit.config import AlertRule, ProjectConfig
from slmkit.monitor.alerts import needs_drift
from slmkit.monitor.embedding import Reference, reference_for, stored_reference, training_inputs
from slmkit.monitor.evaluate import Monitor, Snapshot
from slmkit.monitor.reference import TaskReference, reference_of
from slmkit.monitor.stats import MIN_REFERENCE
from slmkit.monitor.window import connect, load_traffic
from slmkit.registry import Registry, Release
from slmkit.registry.checklist import RuleCheck

CONFIDENCE_ENGINES = ("transformers",)  # the engines that record each answer's token probabilities
BUILT_ON_FIRST_USE = "built on first use"  # quick mode: no stored input reference, but one can be built


def check_rules(
    config: ProjectConfig,
    registry: Registry,
    *,
    subject: str,
    recorded_config: dict[str, Any],
    eval_report_digest: str,
    dataset_version: str,
    embed: Callable[[Sequence[str]], Any] | None = None,
    now: datetime | None = None,
    quick: bool = False,
) -> list[RuleCheck]:
    """Each rule of config.monitor.alerts: does it evaluate for `subject` (name@version, or "run <id>")?"""
    rules = config.monitor.alerts
    if not rules:
        return []
    reference = reference_of(registry, subject, recorded_config, eval_report_digest, dataset_version)
    inputs: Reference | str | None = None
    if any(rule.metric.startswith(("input_drift", "drift")) for rule in rules):
        if quick:
            inputs = _stored_or_buildable(config, registry, dataset_version)
        else:
            if embed is None and config.monitor.embeddings:
                from slmkit.monitor.embedding import InputEmbedder

                embed = InputEmbedder()
            inputs = _input_reference(config, registry, dataset_version, embed)
    name, _, version = subject.rpartition("@")
    if quick or not (name and version.isdigit()):  # not on traffic (or a run about to be released: none yet)
        return [_verdict(rule, reference, inputs, None, _missing(config, rule, reference, inputs)) for rule in rules]
    now = now or datetime.now(UTC)
    longest = max(rule.window_s for rule in rules)
    monitor = Monitor(config, embed=embed, registry=registry)
    conn = connect(config.state_dir / "requests.db")
    try:
        traffic = load_traffic(conn, name, int(version), now - timedelta(seconds=longest), now)
        checks = []
        for rule in rules:
            missing = _missing(config, rule, reference, inputs)
            snap = None if missing else monitor.snapshot(conn, traffic, rule.window_s, drift=needs_drift(rule))
            checks.append(_verdict(rule, reference, inputs, snap, missing))
        return checks
    finally:
        conn.close()
        monitor.close()


def release_rule_checks(
    config: ProjectConfig, registry: Registry, release: Release, *, quick: bool = False
) -> list[RuleCheck]:
    """`check_rules` for a recorded release."""
    return check_rules(
        config,
        registry,
        subject=release.ref,
        recorded_config=release.config,
        eval_report_digest=release.eval_report_digest,
        dataset_version=release.dataset_version,
        quick=quick,
    )


def _verdict(
    rule: AlertRule, reference: TaskReference, inputs: Reference | str | None, snap: Snapshot | None, missing: str
) -> RuleCheck:
    if missing:
        return RuleCheck(rule.text, False, missing)
    ready = _ready(rule, reference, inputs)
    if snap is None:
        return RuleCheck(rule.text, True, f"{rule.condition}: evaluates ({ready})")
    requests = int(snap.metrics.get("requests") or 0)
    value = snap.value(rule.metric)
    if requests < rule.min_requests:
        seen = f"no verdict yet: {requests} requests in the last {rule.window} < min_requests {rule.min_requests}"
    else:
        seen = f"now {value:.4g} on {requests} requests" if value is not None else f"no value on {requests} requests"
    return RuleCheck(rule.text, True, f"{rule.condition}: evaluates ({ready}); {seen}")


def _missing(config: ProjectConfig, rule: AlertRule, reference: TaskReference, inputs: Reference | str | None) -> str:
    """Why the rule could never be judged for this release ('' when it can)."""
    if rule.metric.startswith("confidence") and config.serve.engine not in CONFIDENCE_ENGINES:
        return f"{rule.metric}: serve.engine {config.serve.engine} records no token probabilities (transformers does)"
    return _missing_for(rule, reference, inputs)


def _missing_for(rule: AlertRule, reference: TaskReference, inputs: Reference | str | None) -> str:
    metric = rule.metric
    if reference.task is None:
        return reference.problems.get("task", "the release's task cannot be read")
    if metric.startswith("label") and reference.label_field is None:
        return f"{metric}: the task has no label field"
    if metric.startswith("label_share.") and metric.removeprefix("label_share.") not in reference.labels:
        return f"{metric}: not a label of {reference.label_field} ({', '.join(reference.labels)})"
    if metric.startswith("label_drift") and not reference.eval_labels:
        return f"{metric}: {reference.problems.get('eval', 'the eval recorded no labelled answers')}"
    few = _too_small(metric, reference, inputs)
    if few:
        return few
    if metric.startswith("confidence_drift") and not reference.eval_confidences:
        return (
            f"{metric}: {reference.problems.get('confidence') or reference.problems.get('eval', 'no eval confidences')}"
        )
    if metric.startswith("input_drift") and not isinstance(inputs, Reference) and inputs != BUILT_ON_FIRST_USE:
        return f"{metric}: no input reference ({inputs})"
    has_inputs = isinstance(inputs, Reference) or inputs == BUILT_ON_FIRST_USE
    if metric == "drift" and not (reference.eval_labels or reference.eval_confidences or has_inputs):
        return "drift: none of the three drift tests has a reference"
    return ""


def _too_small(metric: str, reference: TaskReference, inputs: Reference | str | None) -> str:
    """A reference too small for its test ever to call drift (see stats.decide)."""
    sizes = {
        "label_drift": (
            sum(reference.eval_labels.values()) if reference.eval_labels else None,
            "labelled eval answers",
        ),
        "confidence_drift": (len(reference.eval_confidences or []) or None, "eval confidences"),
        "input_drift": (inputs.size if isinstance(inputs, Reference) else None, "embedded training inputs"),
    }
    for prefix, (size, what) in sizes.items():
        if metric.startswith(prefix) and size is not None and size < MIN_REFERENCE:
            return f"{metric}: only {size} {what}; a drift test needs at least {MIN_REFERENCE} (evaluate on more items)"
    return ""


def _ready(rule: AlertRule, reference: TaskReference, inputs: Reference | str | None) -> str:
    if rule.metric.startswith("input_drift") and inputs == BUILT_ON_FIRST_USE:
        return "reference: embedded from the training split on first use"
    if rule.metric.startswith("input_drift") and isinstance(inputs, Reference):
        return f"reference: {inputs.size} embedded training inputs"
    if rule.metric.startswith("label_drift") and reference.eval_labels:
        return f"reference: {sum(reference.eval_labels.values())} labelled eval answers"
    if rule.metric.startswith("confidence_drift") and reference.eval_confidences:
        return f"reference: {len(reference.eval_confidences)} eval confidences"
    return "from the request log"


def _stored_or_buildable(config: ProjectConfig, registry: Registry, dataset_version: str) -> Reference | str:
    """The stored input reference; else BUILT_ON_FIRST_USE when a training split to build it from exists."""
    if not config.monitor.embeddings:
        return "monitor.embeddings is off"
    stored = stored_reference(registry, dataset_version, size=config.monitor.drift.reference_size)
    if stored is not None:
        return stored
    try:
        inputs = training_inputs(registry, dataset_version)
    except Exception as exc:  # a dataset this store does not hold
        return f"no training inputs for dataset {dataset_version}: {exc}"
    return BUILT_ON_FIRST_USE if len(inputs) >= 2 else f"dataset {dataset_version} has {len(inputs)} training input(s)"


def _input_reference(
    config: ProjectConfig, registry: Registry, dataset_version: str, embed: Callable[[Sequence[str]], Any] | None
) -> Reference | str:
    if not config.monitor.embeddings:
        return "monitor.embeddings is off"
    if embed is None:
        from slmkit.monitor.embedding import InputEmbedder

        embed = InputEmbedder()
    try:
        return reference_for(registry, dataset_version, embed, size=config.monitor.drift.reference_size)
    except Exception as exc:  # no training split here, the embedding model missing
        return str(exc)
