"""`slmkit synth`: grounded synthetic rows, checked before they train, as a new dataset version.

Reads the task's latest real dataset version (a synthetic one is traced back to its parent, so
runs never stack synthetic rows on synthetic rows), plans the teacher requests under the budget
(`synth_plan`), shows what they will cost, asks the teacher (`synth_teacher`: every reply is
journaled as it arrives, so a crashed run resumes without paying twice), checks every reply
(`synth_checks`, `synth_dedup`, `synth_judge`), applies the real-row floor, and writes a
dataset version: the parent's train rows plus the accepted synthetic rows (each with its
provenance), the parent's validation and gold files byte for byte (synthetic rows never enter
either), `synthetic_rejects.jsonl` with every dropped row and its reason, and a data card with
real and synthetic counts per label. Train picks it up as the latest version.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmkit import __version__
from slmkit.config import ProjectConfig
from slmkit.data.dataset import Dataset, open_dataset
from slmkit.data.pii import check_canaries
from slmkit.data.synth_checks import SYNTH_REJECT_KINDS, Candidate, check_rows
from slmkit.data.synth_plan import Planned, label_name, plan_requests
from slmkit.data.synth_teacher import CHARS_PER_TOKEN, Journal, Meter, OpenAITeacher, Teacher, ask_all
from slmkit.errors import StageError
from slmkit.registry import Registry, hash_file

JOURNAL = Path("synth") / "journal.jsonl"
SHOWN = 12  # accepted and rejected rows shown on the card


@dataclass
class SynthResult:
    """What one run planned, asked, kept and dropped, and the dataset version it wrote (None for a dry run)."""

    parent: str
    planned: int
    new_calls: int = 0
    cached: int = 0
    left: int = 0  # requests not asked: synth.max_calls was reached
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    by_label: dict[str, dict[str, int]] = field(default_factory=dict)
    real_share: float = 1.0
    teacher: Meter = field(default_factory=Meter)
    judge: Meter | None = None
    version: str | None = None
    path: Path | None = None

    def summary_lines(self) -> list[str]:
        if self.version is None:
            return [f"dry run: nothing asked; {self.planned} requests planned from {self.parent}"]
        t = self.teacher
        lines = [
            f"teacher: {t.calls} new calls in {t.seconds:.1f}s ({t.failed} failed), {t.prompt_tokens:,} prompt + "
            f"{t.completion_tokens:,} completion tokens (as the server counted); {t.cached} replies from the journal "
            "(paid earlier)",
        ]
        if self.judge is not None:
            j = self.judge
            lines.append(f"judge: {j.calls} new calls in {j.seconds:.1f}s, {j.cached} from the journal")
        rejected = sum(self.rejected.values())
        reasons = ", ".join(f"{n} {kind}" for kind, n in self.rejected.items())
        lines.append(
            f"synthetic rows: {self.accepted + rejected} candidates -> {self.accepted} accepted, {rejected} rejected"
            + (f" ({reasons})" if reasons else "")
        )
        if self.left:
            lines.append(f"{self.left} requests left for a later run (synth.max_calls); run `slmkit synth` again")
        labels = ", ".join(f"{name} {c['real']}+{c['synthetic']}" for name, c in self.by_label.items())
        if labels:
            lines.append(f"train rows per label (real+synthetic): {labels}")
        lines.append(f"real rows are {self.real_share:.0%} of training")
        lines.append(
            f"dataset {self.version} (from {self.parent}): train = real + synthetic; validation and gold unchanged"
        )
        if self.path is not None:
            lines.append(f"every dropped row with its reason: {self.path / 'synthetic_rejects.jsonl'}")
            lines.append(f"data card: {self.path / 'report.html'}")
        return lines


def run_synth(
    config: ProjectConfig,
    *,
    registry: Registry | None = None,
    dataset: str | None = None,
    teacher: Teacher | None = None,
    judge: Teacher | None = None,
    max_calls: int | None = None,
    dry_run: bool = False,
    log: Callable[[str], None] = print,
) -> SynthResult:
    """Plan, ask, check and write; `teacher` / `judge` replace the configured endpoints (tests, scripts)."""
    from slmkit.data.build import training_grounder
    from slmkit.data.clean import Cleaner
    from slmkit.data.synth_dedup import deduplicate
    from slmkit.data.synth_judge import judge_rows
    from slmkit.task import Task

    registry = registry or Registry(config.state_dir)
    task = Task.from_config(config)
    synth = config.synth
    parent = _real_parent(config, registry, dataset)
    train = parent.examples("train")
    seeds = [e for e in train if not e.history]
    chunks = _corpus(parent)
    planned = plan_requests(task, synth, seeds, chunks)
    if not planned:
        raise StageError(
            f"nothing to ask the teacher for: {len(seeds)} seed rows, kinds {synth.kinds}",
            hint="check synth.kinds, synth.per_seed and synth.per_label (labels already at per_label ask nothing)",
        )
    journal = Journal(config.state_dir / JOURNAL)
    budget = max_calls if max_calls is not None else synth.max_calls
    for line in estimate_lines(planned, journal, budget, synth.teacher.concurrency, parent.version):
        log(line)
    result = SynthResult(parent=parent.version, planned=len(planned))
    if dry_run:
        return result

    teacher = teacher or _endpoint_teacher(config)
    requests = [p.request for p in planned]
    replies, made = ask_all(
        teacher, journal, requests, concurrency=synth.teacher.concurrency, budget=budget, meter=result.teacher
    )
    result.new_calls, result.cached = made, result.teacher.cached
    candidates = [
        Candidate(p, replies[p.request.key], order=i) for i, p in enumerate(planned) if p.request.key in replies
    ]
    result.left = len(planned) - len(candidates)

    cleaner = Cleaner(config, task)
    check_rows(config, task, cleaner, candidates)
    gold = parent.examples("gold")
    dedup_stats = deduplicate(config, cleaner, candidates, [*train, *parent.examples("validation")], gold)
    if synth.judge.enabled:
        judge = judge or _endpoint_teacher(config, judge=True)
        result.judge = Meter()
        judge_rows(task, synth, judge, journal, candidates, budget=max(0, budget - made), meter=result.judge)
    real_by_label = Counter(label_name(e.label) for e in train)
    apply_floor(candidates, len(train), real_by_label, synth.min_real_share)

    accepted = [c for c in candidates if c.alive]
    result.accepted = len(accepted)
    by_kind = Counter(c.verdict[0] for c in candidates if c.verdict is not None)
    result.rejected = {kind: by_kind[kind] for kind in SYNTH_REJECT_KINDS if by_kind[kind]}
    synthetic_by_label = Counter(label_name(c.example.label) for c in accepted if c.example is not None)
    names = dict.fromkeys([*(label_name(x) for x in task.labels or []), *real_by_label, *synthetic_by_label])
    result.by_label = {
        str(name): {"real": real_by_label[name], "synthetic": synthetic_by_label[name]} for name in names
    }
    result.real_share = len(train) / (len(train) + len(accepted)) if train or accepted else 1.0
    section = _report_section(
        config, teacher, result, candidates, planned, dedup_stats, cleaner, len(seeds), len(train)
    )
    grounder = training_grounder(config, task, cleaner.scrub_document)
    ground = grounder[1] if grounder is not None else None
    _write_version(config, registry, parent, teacher, candidates, section, result, cleaner.scrub_value, ground)
    return result


def estimate_lines(
    planned: Sequence[Planned], journal: Journal, budget: int, concurrency: int, parent: str
) -> list[str]:
    """What the run will ask and may cost, printed before any call."""
    kinds = Counter(p.kind for p in planned)
    cached = [p for p in planned if journal.get(p.request.key) is not None]
    new = [p for p in planned if journal.get(p.request.key) is None][:budget]
    left = len(planned) - len(cached) - len(new)
    labels = list(dict.fromkeys(p.label for p in planned if p.label is not None and p.kind != "out_of_scope"))
    chars = sum(p.request.prompt_chars() for p in new)
    most = sum(p.request.max_tokens for p in new)
    pace = journal.mean_seconds()
    lines = [
        f"plan from {parent}: {len(planned)} teacher requests ("
        + ", ".join(f"{kind} {n}" for kind, n in kinds.items())
        + ")"
        + (
            f"; labels in order, rarest first: {', '.join(labels[:8])}{' ...' if len(labels) > 8 else ''}"
            if labels
            else ""
        ),
        f"before: {len(cached)} already in the journal (free), {len(new)} new calls (budget {budget})"
        + (f", {left} left for a later run" if left else ""),
    ]
    if new:
        lines.append(
            f"new calls send ~{chars // CHARS_PER_TOKEN:,} prompt tokens (estimated at {CHARS_PER_TOKEN} characters "
            f"a token) and receive at most {most:,} completion tokens"
            + (
                f"; at the journal's pace ({pace:.2f}s a call, {concurrency} at once) about "
                f"{len(new) * pace / concurrency:.0f}s"
                if pace
                else ""
            )
        )
    return lines


def apply_floor(
    candidates: Sequence[Candidate], real_rows: int, real_by_label: Counter[str | None], min_real_share: float
) -> None:
    """Drop accepted synthetic rows past the real-row floor, in turn per label, the most common labels' first."""
    accepted = [c for c in candidates if c.alive and c.example is not None]
    if min_real_share <= 0:
        return
    allowed = 0 if min_real_share >= 1 else math.floor(real_rows * (1 - min_real_share) / min_real_share + 1e-9)
    if len(accepted) <= allowed:
        return
    by_label: dict[str | None, list[Candidate]] = defaultdict(list)
    for c in accepted:
        by_label[label_name(c.example.label)].append(c)  # type: ignore[union-attr]
    order = sorted(by_label, key=lambda name: (real_by_label[name], str(name)))
    kept: list[Candidate] = []
    for i in range(max(len(rows) for rows in by_label.values())):
        kept.extend(by_label[name][i] for name in order if i < len(by_label[name]))
    for c in kept[allowed:]:
        c.reject(
            "real_share",
            f"synth.min_real_share={min_real_share:g} allows {allowed} synthetic rows beside {real_rows} real ones",
        )


def _real_parent(config: ProjectConfig, registry: Registry, version: str | None) -> Dataset:
    dataset = open_dataset(config, registry, version)
    parent = (dataset.manifest.get("synthetic") or {}).get("parent")
    return open_dataset(config, registry, parent) if parent else dataset


def _corpus(dataset: Dataset) -> list[dict[str, Any]]:
    path = dataset.path / "corpus.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _endpoint_teacher(config: ProjectConfig, *, judge: bool = False) -> Teacher:
    settings = config.synth.teacher
    endpoint = (config.synth.judge.endpoint if judge else None) or settings.endpoint
    model = (config.synth.judge.model if judge else None) or settings.model
    if endpoint is None:
        raise StageError(
            "synth.teacher.endpoint is not set: there is no teacher to ask",
            hint="point it at an OpenAI-compatible server (vLLM, llama.cpp, Ollama, `slmkit serve`), e.g. "
            "http://127.0.0.1:8001/v1; `slmkit synth --dry-run` shows the plan without one",
        )
    return OpenAITeacher(
        endpoint,
        model,
        api_key_env=settings.api_key_env,
        timeout_s=settings.timeout_s,
        max_retries=settings.max_retries,
        structured=settings.structured,
    )


def _report_section(
    config: ProjectConfig,
    teacher: Teacher,
    result: SynthResult,
    candidates: Sequence[Candidate],
    planned: Sequence[Planned],
    dedup_stats: dict[str, Any],
    cleaner: Any,
    seeds: int,
    real_rows: int,
) -> dict[str, Any]:
    """report.json's "synthetic": only what the data and the journal fix, so a rerun gives the same version."""
    used = [c.reply for c in candidates if c.reply.error is None]
    accepted = [c for c in candidates if c.alive and c.example is not None]
    rejected = [c for c in candidates if c.verdict is not None]
    return {
        "parent": result.parent,
        "teacher": {"model": teacher.model},
        "settings": config.synth.model_dump(mode="json"),
        "seeds": seeds,
        "requests": {"planned": len(planned), "answered": len(candidates), "left": result.left},
        "planned_by_kind": dict(Counter(p.kind for p in planned)),
        "accepted_by_kind": dict(Counter(c.planned.kind for c in accepted)),
        "candidates": len(candidates),
        "accepted": len(accepted),
        "rejected": len(rejected),
        "rejected_by_reason": result.rejected,
        "reject_kinds": {kind: SYNTH_REJECT_KINDS[kind] for kind in result.rejected},
        "by_label": result.by_label,
        "real_rows": real_rows,
        "real_share": round(result.real_share, 4),
        "min_real_share": config.synth.min_real_share,
        "dedup": dedup_stats,
        "pii": {"rows_with_pii": cleaner.rows_with_pii, "by_type": dict(cleaner.pii_counts)},
        "teacher_cost": {
            "replies": len(used),
            "prompt_tokens": sum(r.prompt_tokens for r in used),
            "completion_tokens": sum(r.completion_tokens for r in used),
            "call_seconds": round(sum(r.seconds for r in used), 1),
        },
        # What the card shows of the teacher's text passes the same PII removal as the rows.
        "examples": {
            "accepted": [cleaner.scrub_value(_shown(c)) for c in accepted[:SHOWN]],
            "rejected": [cleaner.scrub_value(_shown(c)) for c in rejected[:SHOWN]],
        },
    }


def _shown(candidate: Candidate) -> dict[str, Any]:
    example = candidate.example
    shown: dict[str, Any] = {
        "id": candidate.row_id,
        "kind": candidate.planned.kind,
        "seeds": list(candidate.planned.seeds),
    }
    if example is not None:
        shown.update(input=example.input[:240], output=example.output)
    else:
        shown["reply"] = (candidate.reply.text or "")[:240]
    if candidate.verdict is not None:
        shown["reject"], shown["reason"] = candidate.verdict
    return shown


def _write_version(
    config: ProjectConfig,
    registry: Registry,
    parent: Dataset,
    teacher: Teacher,
    candidates: Sequence[Candidate],
    section: dict[str, Any],
    result: SynthResult,
    scrub: Callable[[Any], Any],
    ground: Callable[[dict[str, Any]], dict[str, Any]] | None,
) -> None:
    from slmkit.data.card import write_card

    with tempfile.TemporaryDirectory(dir=registry.home, prefix="synth-") as tmp:
        out = Path(tmp) / "dataset"
        out.mkdir()
        for name in ("validation.jsonl", "gold.jsonl", "rejects.jsonl", "corpus.jsonl"):
            if (parent.path / name).is_file():
                shutil.copyfile(parent.path / name, out / name)
        if hash_file(out / "gold.jsonl") != parent.gold_hash:
            raise StageError(f"the gold set of {parent.version} changed while it was copied", hint="run synth again")
        with (out / "train.jsonl").open("wb") as fh:
            fh.write((parent.path / "train.jsonl").read_bytes())
            for c in candidates:
                if c.alive and c.example is not None:
                    record = {**c.example.as_dict(), "synthetic": c.provenance(teacher)}
                    if ground is not None:  # a retrieval task: retrieved context and citations, as the build gives
                        record = ground(record)
                    fh.write(json.dumps(record, ensure_ascii=False).encode() + b"\n")
        with (out / "synthetic_rejects.jsonl").open("w", encoding="utf-8") as fh:
            for c in candidates:
                if c.verdict is not None:
                    fh.write(json.dumps(_reject_record(c, teacher, scrub), ensure_ascii=False) + "\n")
        check_canaries(out, config.data.pii.canaries)
        report = dict(parent.report)
        report["counts"] = {**report["counts"], "synthetic": result.accepted}
        report["synthetic"] = section
        report["built_with"] = f"slmkit {__version__}"
        _write_json(out / "report.json", report)
        write_card(report, out / "report.html")
        manifest = dict(parent.manifest)
        manifest["synthetic"] = {
            "parent": parent.version,
            "settings": section["settings"],
            "teacher": section["teacher"],
        }
        manifest["counts"] = report["counts"]
        manifest["slmkit_version"] = __version__
        manifest["files"] = {
            path.name: {"sha256": hash_file(path), "bytes": path.stat().st_size} for path in sorted(out.iterdir())
        }
        _write_json(out / "manifest.json", manifest)  # last: a dataset with a manifest is complete
        digest = registry.store.put_dir(out)
    version = f"ds-{digest[:12]}"
    meta = {
        "synthetic": {
            "parent": parent.version,
            "teacher": {"endpoint": teacher.endpoint, "model": teacher.model},
            "accepted": result.accepted,
            "rejected": result.rejected,
        }
    }
    registry.record_dataset(version, config.task.name, digest, parent.gold_hash, report["counts"], meta)
    result.version, result.path = version, registry.store.path(digest)


def _reject_record(candidate: Candidate, teacher: Teacher, scrub: Callable[[Any], Any]) -> dict[str, Any]:
    """A dropped row as rejects.jsonl shows one, plus its provenance; the teacher's text goes through PII removal."""
    assert candidate.verdict is not None
    kind, reason = candidate.verdict
    example = candidate.example
    raw: Any = {"input": example.input, "output": example.output} if example is not None else candidate.reply.text
    return {
        "id": candidate.row_id,
        "source": candidate.source,
        "kind": kind,
        "reason": scrub(reason),
        "stage": "synth",
        "raw": scrub(raw),
        "synthetic": candidate.provenance(teacher),
    }


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
