"""One release, one window: every metric and the drift tests, against the release's own references.

`Monitor` keeps what does not change between evaluations (each release's references, the
embedding model) so the server's alert timer and `slmkit monitor` pay for them once.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from slmkit.config import ProjectConfig
from slmkit.monitor.drift import DriftReport, run_drift
from slmkit.monitor.embedding import Reference, dequantize, reference_for, stored_reference
from slmkit.monitor.reference import TaskReference, task_reference
from slmkit.monitor.window import Traffic, confidences, label_counts, recent_embeddings, window_metrics
from slmkit.registry import Registry, Release

log = logging.getLogger("slmkit.monitor")


@dataclass
class Snapshot:
    """A release's metrics over one window, with its drift tests when they were asked for."""

    release: str
    window_s: float
    start: datetime
    end: datetime
    metrics: dict[str, Any]
    drift: DriftReport | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def value(self, metric: str) -> float | None:
        """A rule's metric: a label share is 0 for a label never answered (once something was answered)."""
        if metric in self.metrics:
            value = self.metrics[metric]
            return None if value is None else float(value)
        if metric.startswith("label_share."):
            return 0.0 if self.metrics.get("answers") else None
        if self.drift is not None:
            return self.drift.metrics().get(metric)
        return None

    def as_dict(self) -> dict[str, Any]:
        return {
            "release": self.release,
            "window_s": self.window_s,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "metrics": self.metrics,
            "drift": self.drift.as_dict() if self.drift is not None else None,
            "notes": self.notes,
        }


class Monitor:
    """References per release (cached) and the embedding model (shared, loaded on first need)."""

    def __init__(
        self,
        config: ProjectConfig,
        *,
        embed: Callable[[Sequence[str]], Any] | None = None,
        registry: Registry | None = None,
        read_only: bool = False,
    ) -> None:
        self.config = config
        self.read_only = read_only  # read stored input references only: never embed, never store one
        self._embed = embed
        self._registry = registry
        self._own_registry = registry is None
        self._tasks: dict[tuple[str, int], TaskReference] = {}
        self._inputs: dict[tuple[str, int], Reference | str] = {}
        self._lock = threading.Lock()

    @property
    def registry(self) -> Registry:
        if self._registry is None:
            self._registry = Registry(self.config.state_dir)
        return self._registry

    def release(self, name: str, version: int) -> Release:
        return self.registry.get_release(name, version)

    def task_reference(self, name: str, version: int) -> TaskReference:
        key = (name, version)
        if key not in self._tasks:
            self._tasks[key] = task_reference(self.registry, self.release(name, version))
        return self._tasks[key]

    def input_reference(self, name: str, version: int) -> Reference | str:
        """The embedded training inputs of the release's dataset, or why there are none."""
        key = (name, version)
        if key not in self._inputs:
            if not self.config.monitor.embeddings:
                self._inputs[key] = "monitor.embeddings is off"
            elif self.read_only:
                dataset = self.release(name, version).dataset_version
                stored = stored_reference(self.registry, dataset, size=self.config.monitor.drift.reference_size)
                self._inputs[key] = stored or (
                    f"none stored for dataset {dataset} yet (`slmkit release` builds it, or the server's first check)"
                )
            else:
                try:
                    with self._lock:
                        if self._embed is None:
                            from slmkit.monitor.embedding import InputEmbedder

                            self._embed = InputEmbedder()
                    self._inputs[key] = reference_for(
                        self.registry,
                        self.release(name, version).dataset_version,
                        self._embed,
                        size=self.config.monitor.drift.reference_size,
                    )
                except Exception as exc:  # a release from another store, a missing model package
                    self._inputs[key] = str(exc)
        return self._inputs[key]

    def snapshot(
        self, conn: Any, traffic: Traffic, window_s: float, *, drift: bool, mask: np.ndarray | None = None
    ) -> Snapshot:
        """The metrics of the last `window_s` seconds of `traffic` (and its drift tests when `drift`)."""
        reference = self.task_reference(traffic.name, traffic.version)
        mask = traffic.mask(window_s) if mask is None else mask
        start = max(traffic.end - timedelta(seconds=window_s), traffic.start)
        labels = label_counts(conn, traffic.name, traffic.version, start, traffic.end)
        metrics = window_metrics(traffic, mask, fields=len(reference.fields), span_s=window_s, labels=labels)
        snap = Snapshot(traffic.ref, window_s, start, traffic.end, metrics, notes=dict(reference.problems))
        if drift:
            snap.drift = self.drift(conn, traffic, mask, start, reference, labels)
        return snap

    def drift(
        self,
        conn: Any,
        traffic: Traffic,
        mask: np.ndarray,
        start: datetime,
        reference: TaskReference,
        labels: Counter[str],
    ) -> DriftReport:
        cfg = self.config.monitor.drift
        inputs = self.input_reference(traffic.name, traffic.version)
        embeddings = None
        if isinstance(inputs, Reference):
            blobs = recent_embeddings(conn, traffic.name, traffic.version, start, traffic.end, cfg.max_window)
            embeddings = dequantize(blobs)
        report = run_drift(
            cfg,
            labels=labels if reference.label_field else None,
            reference_labels=reference.eval_labels,
            confidences=confidences(traffic, mask).tolist(),
            reference_confidences=reference.eval_confidences,
            embeddings=embeddings,
            reference_embeddings=inputs.embeddings if isinstance(inputs, Reference) else None,
            bandwidth=inputs.bandwidth if isinstance(inputs, Reference) else None,
        )
        if not isinstance(inputs, Reference) and "input" in report.skipped:
            report.skipped["input"] = f"no reference: {inputs}"
        if "confidence" in report.skipped and reference.problems.get("confidence"):
            report.skipped["confidence"] = f"no reference: {reference.problems['confidence']}"
        return report

    def close(self) -> None:
        if self._own_registry and self._registry is not None:
            self._registry.close()
            self._registry = None
