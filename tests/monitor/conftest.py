"""A project with a release whose references are real records: a dataset in the store, an eval report
with the release's answers and confidences on 100 gold items, and a request log to fill by hand."""

from __future__ import annotations

import json
import random
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from slmkit.config import ProjectConfig, load_config
from slmkit.monitor import RequestLog, RequestRecord
from slmkit.registry import Registry, Release
from tests.conftest import EXAMPLE, write_project

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
EVAL_MIX = {"billing": 40, "shipping": 30, "technical": 30}  # the release's labels on its 100 gold items


@dataclass
class Monitored:
    config: ProjectConfig
    release: Release

    def log(self) -> RequestLog:
        return RequestLog(self.config.state_dir / "requests.db")

    def add(self, when: datetime, count: int, *, spacing_s: float = 1.0, **fields: Any) -> None:
        """`count` answered requests from `when` on, `spacing_s` apart; `fields` may be a callable of i."""
        rows = []
        for i in range(count):
            values = {k: (v(i) if callable(v) else v) for k, v in fields.items()}
            values.setdefault("outcome", "ok")
            values.setdefault("latency_ms", 100.0)
            values.setdefault("valid", True)
            values.setdefault("refused", False)
            values.setdefault("escalate", False)
            values.setdefault("label", "billing")
            values.setdefault("null_fields", 0)
            rows.append(
                RequestRecord(
                    request_id=f"req-{when.timestamp():.0f}-{i}",
                    model_ref=self.release.name,
                    release_name=self.release.name,
                    release_version=self.release.version,
                    ts=(when + timedelta(seconds=i * spacing_s))
                    .isoformat(timespec="milliseconds")
                    .replace("+00:00", "Z"),
                    **values,
                )
            )
        with self.log() as log:
            log.append(rows)


def eval_report(
    task_name: str, mix: dict[str, int], *, seed: int = 0, label_scoring: bool | None = True
) -> dict[str, Any]:
    """An eval report as `slmkit eval` writes it, as far as monitoring reads it: the adapter's answers and
    how they were decoded (`label_scoring` None: a report from before label scoring, which has no such key)."""
    rng = random.Random(seed)
    predictions = []
    for label, count in mix.items():
        for i in range(count):
            answer = {"category": label, "priority": "normal", "order_id": None, "product": None}
            predictions.append(
                {
                    "id": f"{label}-{i}",
                    "input": "Subject: x\n\ny",
                    "gold": answer,
                    "adapter": {
                        "text": json.dumps(answer),
                        "valid": True,
                        "confidence": round(rng.uniform(0.5, 1.0), 4),
                    },
                }
            )
    report = {"kind": "slmkit.eval_report", "task": task_name, "items": len(predictions), "predictions": predictions}
    if label_scoring is not None:
        report["decoding"] = {"greedy": True, "constrained": True, "label_scoring": label_scoring}
    return report


def record_release(
    config: ProjectConfig,
    *,
    train_inputs: list[str] | None = None,
    mix: dict[str, int] | None = None,
    dataset_version: str | None = None,
    adapter_dir: Path | None = None,
    base_model: dict[str, Any] | None = None,
    label_scoring: bool | None = True,
) -> Release:
    """A release whose eval report (the release's answers on 100 gold items, `mix`) is in the store.

    Its dataset is `dataset_version`, or one recorded here from `train_inputs`; its adapter is
    `adapter_dir` (a real one, to serve it) or an empty stand-in (to read its references only).
    """
    registry = Registry(config.state_dir)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if dataset_version is None:
                data = Path(tmp) / "dataset"
                data.mkdir()
                rows = [
                    {"id": str(i), "source": "test", "input": text, "fields": {}, "output": {}, "label": "billing"}
                    for i, text in enumerate(train_inputs or [])
                ]
                (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
                digest = registry.store.put_dir(data)
                dataset_version = f"ds-{digest[:12]}"
                registry.record_dataset(dataset_version, config.task.name, digest, "0" * 64, {"train": len(rows)}, {})
            report = Path(tmp) / "report.json"
            answers = eval_report(config.task.name, mix or EVAL_MIX, label_scoring=label_scoring)
            report.write_text(json.dumps(answers), encoding="utf-8")
            report_digest = registry.store.put_file(report)
            if adapter_dir is None:
                adapter_dir = Path(tmp) / "adapter"
                adapter_dir.mkdir()
                (adapter_dir / "adapter_config.json").write_text("{}", encoding="utf-8")
            adapter_digest = registry.store.put_dir(adapter_dir)
        return registry.create_release(
            name=config.task.name,
            run_id="run-test",
            adapter_digest=adapter_digest,
            base_model=base_model or {"spec": "test"},
            dataset_version=dataset_version,
            gold_hash="0" * 64,
            eval_report_digest=report_digest,
            config=config.resolved(),
            note="monitoring test",
        )
    finally:
        registry.close()


def example_inputs(count: int) -> list[str]:
    """Rendered inputs of the example's first tickets, as a dataset's train.jsonl holds them."""
    out = []
    for line in (EXAMPLE / "data" / "tickets.jsonl").read_bytes().splitlines():
        try:
            record = json.loads(line.decode("utf-8"))
            out.append(f"Subject: {record['subject']}\n\n{record['body']}")
        except (ValueError, KeyError, TypeError):
            continue
        if len(out) == count:
            break
    return out


def monitored_project(root: Path, **overrides: Any) -> Monitored:
    config = load_config(write_project(root, "smollm2-135m-instruct", rows=20, overrides=overrides), check_files=False)
    return Monitored(config, record_release(config, train_inputs=example_inputs(60)))


@pytest.fixture
def monitored(tmp_path: Path) -> Monitored:
    """The example project (embeddings off) with one release and an empty request log."""
    return monitored_project(tmp_path / "project")
