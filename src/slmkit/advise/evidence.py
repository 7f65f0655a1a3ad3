"""The project's own evidence for `slmkit advise`: what its data, documents and evals show.

Read from what earlier stages recorded, never guessed: the latest dataset version's report
(rows and rows per label, their entropy, near duplicates, the gold set), a sample of its train
inputs (word diversity), every dataset version's corpus hash over time (how often the documents
changed), and the base model's zero-shot score on the locked gold set (from the latest eval
that measured it, or measured now on a few gold items with `quick_eval`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from datetime import datetime
from itertools import pairwise
from typing import Any

from slmkit.advise.rules import Evidence
from slmkit.config import ProjectConfig
from slmkit.errors import SlmkitError
from slmkit.registry import Registry

DIVERSITY_SAMPLE = 2000  # train inputs read for the word-diversity figure


def read_evidence(
    config: ProjectConfig, registry: Registry, *, quick_eval: int = 0, log: Callable[[str], None] = print
) -> Evidence:
    """Everything the project can show; an Evidence of Nones before the first `slmkit data build`."""
    from slmkit.data import open_dataset

    try:
        dataset = open_dataset(config, registry)
    except SlmkitError:
        return Evidence()
    parent = (dataset.manifest.get("synthetic") or {}).get("parent")
    if parent:  # judge the real rows, not the ones a teacher added
        dataset = open_dataset(config, registry, parent)
    report = dataset.report
    counts = report.get("counts") or {}
    labels = (report.get("by_label") or counts.get("by_label") or {}).get("train")
    near = ((report.get("duplicates") or {}).get("near") or {}).get("removed")
    zero = (
        _quick_zero_shot(config, dataset, quick_eval, log)
        if quick_eval
        else _recorded_zero_shot(registry, config, dataset)
    )
    return Evidence(
        rows=counts.get("train"),
        labels={str(k): int(v) for k, v in labels.items()} if labels else None,
        label_entropy=_entropy(labels) if labels else None,
        input_diversity=_diversity([e.input for e in dataset.examples("train")[:DIVERSITY_SAMPLE]]),
        near_duplicate_share=near / counts["input"] if near is not None and counts.get("input") else None,
        gold_rows=counts.get("gold"),
        dataset=dataset.version,
        corpus_changes=_corpus_changes(registry, config.task.name),
        zero_shot=zero,
    )


def evidence_lines(evidence: Evidence) -> list[str]:
    """The evidence as the CLI prints it, one measurement a line."""
    if evidence.dataset is None:
        return ["evidence: no dataset built yet (run `slmkit data build` to let the advice read your data)"]
    lines = [f"evidence from {evidence.dataset}:"]
    if evidence.labels:
        lines.append(
            f"  {evidence.rows} training rows over {len(evidence.labels)} labels; label entropy "
            f"{evidence.label_entropy:.2f} (1 = all labels equally common); fewest rows: "
            + ", ".join(f"{k} {v}" for k, v in sorted(evidence.labels.items(), key=lambda kv: kv[1])[:3])
        )
    elif evidence.rows is not None:
        lines.append(f"  {evidence.rows} training rows (no label field)")
    if evidence.input_diversity is not None:
        lines.append(f"  input diversity: {evidence.input_diversity:.2f} distinct words per word over the train inputs")
    if evidence.near_duplicate_share is not None:
        lines.append(f"  near duplicates removed: {evidence.near_duplicate_share:.1%} of input rows")
    if evidence.gold_rows:
        lines.append(f"  locked gold set: {evidence.gold_rows} rows")
    if evidence.corpus_changes is not None:
        changes, days = evidence.corpus_changes
        lines.append(f"  documents: the corpus changed {changes} time(s) across dataset versions over {days:.0f} days")
    if evidence.zero_shot is not None:
        z = evidence.zero_shot
        lines.append(
            f"  base model zero-shot: {z['metric']} {z['value']:.2f} [95% CI {z['low']:.2f}-{z['high']:.2f}] on "
            f"{z['n']} gold items ({z['source']})"
        )
    return lines


def _entropy(labels: dict[str, Any]) -> float:
    counts = [int(v) for v in labels.values() if int(v) > 0]
    total = sum(counts)
    if len(labels) < 2 or total == 0:
        return 0.0
    h = -sum(c / total * math.log(c / total) for c in counts)
    return h / math.log(len(labels))


def _diversity(inputs: list[str]) -> float | None:
    words = [w for text in inputs for w in text.casefold().split()]
    return len(set(words)) / len(words) if words else None


def _corpus_changes(registry: Registry, task: str) -> tuple[int, float] | None:
    """(times the corpus hash changed, days between the first and last version with a corpus)."""
    seen: list[tuple[str, str]] = []
    for record in registry.list_datasets(task):
        path = registry.store.path(record.digest) / "manifest.json"
        try:
            files = json.loads(path.read_text(encoding="utf-8")).get("files") or {}
        except OSError:
            continue
        corpus = files.get("corpus.jsonl")
        if corpus:
            seen.append((record.created_at, corpus["sha256"]))
    if not seen:
        return None
    changes = sum(1 for (_, a), (_, b) in pairwise(seen) if a != b)
    days = (_when(seen[-1][0]) - _when(seen[0][0])) / 86400
    return changes, days


def _when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _metric_name(config: ProjectConfig) -> str:
    return "label_accuracy" if config.task.label_field else "exact_match"


def _recorded_zero_shot(registry: Registry, config: ProjectConfig, dataset: Any) -> dict[str, Any] | None:
    """The base model's score from the latest eval on this gold set that measured it."""
    name = _metric_name(config)
    for run in reversed(registry.list_runs(config.task.name)):
        record = registry.latest_eval(run.run_id)
        if record is None or record.gold_hash != dataset.gold_hash:
            continue
        metric = ((record.summary.get("metrics") or {}).get("base") or {}).get(name)
        if metric:
            low, high = metric["ci95"]
            return {
                "metric": name,
                "value": metric["value"],
                "low": low,
                "high": high,
                "n": metric["n"],
                "source": f"the eval of run {run.run_id}",
            }
    return None


def _quick_zero_shot(config: ProjectConfig, dataset: Any, items: int, log: Callable[[str], None]) -> dict[str, Any]:
    """The base model on the first `items` gold rows, decoded as eval decodes it (greedy, free), scored now."""
    from slmkit.eval.metrics import score
    from slmkit.models import load_model, load_tokenizer
    from slmkit.models.generate import generate
    from slmkit.models.resolve import resolve_base_model
    from slmkit.task import Task

    task = Task.from_config(config)
    gold = dataset.examples("gold")[:items]
    ref = resolve_base_model(config.base_model, config.root)
    tokenizer = load_tokenizer(ref)
    model = load_model(ref)
    began = time.perf_counter()
    prompts = [task.prompt_text(tokenizer, row.input, row.history) for row in gold]
    outputs = generate(
        model, tokenizer, prompts, max_new_tokens=config.eval.max_new_tokens, batch_size=config.eval.batch_size
    )
    parsed = [task.parse(o.text) for o in outputs]
    metric = score(task, [row.output for row in gold], parsed, rounds=200)[_metric_name(config)]
    log(f"quick eval: {config.base_model} answered {len(gold)} gold items in {time.perf_counter() - began:.1f}s")
    return {
        "metric": _metric_name(config),
        "value": metric.value,
        "low": metric.low,
        "high": metric.high,
        "n": metric.n,
        "source": f"quick eval of {config.base_model} on {len(gold)} gold items",
    }
