"""Input embeddings for drift: stored compactly per request, and a reference sample of training inputs.

Each answered request's input is redacted (the data stage's PII scrubber, as the training
inputs were) and embedded with all-MiniLM-L6-v2: 384 dimensions, unit length. It is stored as
384 int8 values (384 bytes a request), each row scaled by its own largest component; since
only the direction matters for cosine and the RBF kernel on unit vectors, the scale is not
kept and the row is renormalised when read (cosine to the original >= 0.999).

The reference is a seeded sample of the training split's inputs, embedded once per dataset
version and kept in the object store (recorded as a `drift_reference` artifact, so `slmkit
registry verify` covers it). Beside the embeddings it holds the kernel bandwidth the input
drift test uses (the median distance between reference inputs) and the novelty threshold:
a request whose nearest training input is further away than 99% of training inputs are from
theirs is `flagged` (the review queue draws on those).
"""

from __future__ import annotations

import io
import json
import random
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slmkit.errors import StageError
from slmkit.monitor.stats import median_bandwidth
from slmkit.registry import Registry

EMBEDDING_MODEL = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
NOVELTY_QUANTILE = 0.99  # the share of training inputs not flagged against the rest of the reference
REFERENCE_KIND = "drift_reference"


def quantize(embeddings: np.ndarray) -> list[bytes]:
    """Rows of unit vectors as int8 bytes, each row scaled so its largest component is +-127."""
    rows = np.asarray(embeddings, dtype=np.float32)
    peak = np.maximum(np.abs(rows).max(axis=1, keepdims=True), 1e-12)
    return [bytes(row) for row in np.round(rows / peak * 127).astype(np.int8)]


def dequantize(blobs: Sequence[bytes]) -> np.ndarray:
    """(n, 384) float32 unit rows from stored int8 embeddings."""
    if not blobs:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    rows = np.frombuffer(b"".join(blobs), dtype=np.int8).reshape(len(blobs), -1).astype(np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)


def nearest_similarity(embeddings: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Each row's cosine to its nearest reference row (rows are unit length)."""
    if not len(embeddings):
        return np.zeros(0, dtype=np.float32)
    return np.asarray((embeddings @ reference.T).max(axis=1), dtype=np.float32)


@dataclass(frozen=True)
class Reference:
    """Embedded training inputs of one dataset version, with the bandwidth and novelty threshold they set."""

    dataset_version: str
    embeddings: np.ndarray  # (m, 384) float32, unit rows, as dequantised: the same precision as requests
    bandwidth: float
    novelty_threshold: float
    digest: str | None = None  # where it is stored

    @property
    def size(self) -> int:
        return len(self.embeddings)

    def novelty(self, embeddings: np.ndarray) -> np.ndarray:
        """1 - cosine to the nearest reference input, per row."""
        return 1.0 - nearest_similarity(embeddings, self.embeddings)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        meta = {"dataset_version": self.dataset_version, "model": EMBEDDING_MODEL}
        np.savez(
            buffer,
            embeddings=np.frombuffer(b"".join(quantize(self.embeddings)), dtype=np.int8).reshape(self.size, -1),
            bandwidth=np.float64(self.bandwidth),
            novelty_threshold=np.float64(self.novelty_threshold),
            meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8),
        )
        return buffer.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, digest: str | None = None) -> Reference:
        with np.load(io.BytesIO(data)) as npz:
            meta = json.loads(bytes(npz["meta"]).decode())
            rows = npz["embeddings"]
            return cls(
                meta["dataset_version"],
                dequantize([bytes(row) for row in rows]),
                float(npz["bandwidth"]),
                float(npz["novelty_threshold"]),
                digest,
            )


def build_reference(dataset_version: str, inputs: Sequence[str], embed: Any, *, size: int, seed: int = 0) -> Reference:
    """Embed a seeded sample of `size` inputs; bandwidth and novelty threshold from the sample itself."""
    sample = list(inputs)
    if len(sample) > size:
        sample = random.Random(seed).sample(sample, size)
    embeddings = dequantize(quantize(embed(sample)))  # stored as requests are: compared like with like
    similarity = embeddings @ embeddings.T
    np.fill_diagonal(similarity, -np.inf)  # leave-one-out: each input against the others
    novelty = 1.0 - similarity.max(axis=1) if len(sample) > 1 else np.zeros(len(sample))
    threshold = float(np.quantile(novelty, NOVELTY_QUANTILE)) if len(sample) else 1.0
    return Reference(dataset_version, embeddings, median_bandwidth(embeddings, seed=seed), threshold)


def stored_reference(registry: Registry, dataset_version: str, *, size: int) -> Reference | None:
    """The reference of a dataset version when one was built already (nothing is embedded here)."""
    for digest, meta in registry.find_artifacts(REFERENCE_KIND):
        if (
            meta.get("dataset_version") == dataset_version
            and meta.get("size") == size
            and registry.store.exists(digest)
        ):
            return Reference.from_bytes(registry.store.path(digest).read_bytes(), digest)
    return None


def training_inputs(registry: Registry, dataset_version: str) -> list[str]:
    """The rendered inputs of a dataset version's training split (already PII-redacted by the build)."""
    record = registry.get_dataset(dataset_version)
    train = registry.store.path(record.digest) / "train.jsonl"
    return [json.loads(line)["input"] for line in train.read_text(encoding="utf-8").splitlines() if line.strip()]


def reference_for(registry: Registry, dataset_version: str, embed: Any, *, size: int) -> Reference:
    """The stored reference of a dataset version, built (and stored) on first use.

    `embed(texts) -> (n, 384) array` embeds the training inputs when nothing is stored yet. The
    training inputs were redacted by the data build already; they are embedded as they are.
    """
    stored = stored_reference(registry, dataset_version, size=size)
    if stored is not None:
        return stored
    try:
        inputs = training_inputs(registry, dataset_version)
    except (OSError, ValueError, KeyError) as exc:
        raise StageError(
            f"cannot read the training inputs of dataset {dataset_version} for the input drift reference: {exc}",
            hint="the dataset version must be in this project's store (`slmkit registry verify`)",
        ) from None
    except Exception as exc:  # a RegistryError: the dataset is not recorded here
        raise StageError(
            f"no training inputs for the input drift reference: {exc}",
            hint="releases made from this project's own datasets have one",
        ) from None
    if len(inputs) < 2:
        raise StageError(f"dataset {dataset_version} has {len(inputs)} training input(s); input drift needs more")
    reference = build_reference(dataset_version, inputs, embed, size=size)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference.npz"
        path.write_bytes(reference.to_bytes())
        digest = registry.store.put_file(path)
        meta = {
            "dataset_version": dataset_version,
            "model": EMBEDDING_MODEL,
            "size": size,
            "rows": reference.size,
            "bandwidth": round(reference.bandwidth, 6),
            "novelty_threshold": round(reference.novelty_threshold, 6),
        }
        registry.record_artifact(digest, REFERENCE_KIND, path.stat().st_size, meta)
    return Reference(
        reference.dataset_version, reference.embeddings, reference.bandwidth, reference.novelty_threshold, digest
    )


class InputEmbedder:
    """all-MiniLM-L6-v2 (the data stage's Embedder) as a callable; the model loads on first use.

    One instance may serve several threads (the log writer, the alert timer): calls take turns.
    `threads` caps the CPU threads of the calling thread (torch's OpenMP setting is per thread):
    inside the server, embedding takes one core and leaves the others to generation.
    """

    def __init__(self, batch_size: int = 32, *, threads: int | None = None) -> None:
        from slmkit.data.semantic import Embedder

        self._embedder = Embedder(batch_size=batch_size)
        self._threads = threads
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        if self._threads is not None:
            import torch

            torch.set_num_threads(self._threads)
        with self._lock:
            return self._embedder.embed(list(texts))
