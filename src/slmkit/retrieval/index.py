"""`slmkit index build | update`: data.documents -> chunks -> vectors -> .slmkit/index.db.

`update` re-reads only documents whose bytes, sidecar, access rules or chunk settings changed
(a hash of those, per document), removes documents no longer listed, and writes everything in
one transaction: the index a server reads is always a whole one. A chunk whose text is
unchanged keeps its vector (looked up by content hash), so editing one paragraph embeds one
chunk. `build` re-chunks every document (vectors are still reused where the text is the same).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from slmkit.config import ProjectConfig
from slmkit.retrieval.chunking import Chunk, chunk_document
from slmkit.retrieval.documents import SIDECAR_SUFFIX, document_files, read_document
from slmkit.retrieval.store import INDEX_FILE, IndexStore, NewDocument

EMBEDDING_MODEL = "all-MiniLM-L6-v2"


@dataclass
class IndexResult:
    path: Path
    documents: int  # in the index now
    chunks: int
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    embedded: int = 0  # chunks embedded now
    reused: int = 0  # chunks whose vector was kept (same text)
    seconds: float = 0.0
    generation: int = 0

    def summary_lines(self) -> list[str]:
        read = len(self.added) + len(self.changed)
        lines = [
            f"index {self.path}: {self.documents} documents, {self.chunks} chunks (generation {self.generation})",
            f"{len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged; {self.embedded} chunks embedded, {self.reused} vectors reused",
        ]
        for kind, names in (("added", self.added), ("changed", self.changed), ("removed", self.removed)):
            if names:
                shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
                lines.append(f"  {kind}: {shown}")
        rate = f" ({read / self.seconds:.1f} documents/s)" if read and self.seconds else ""
        lines.append(f"took {self.seconds:.1f}s{rate}")
        return lines


def index_path(config: ProjectConfig) -> Path:
    return config.state_dir / INDEX_FILE


def open_index(config: ProjectConfig) -> IndexStore:
    return IndexStore(index_path(config))


def run_index_update(
    config: ProjectConfig,
    *,
    rebuild: bool = False,
    embedder: Any = None,
    log: Callable[[str], None] | None = None,
) -> IndexResult:
    """Bring the index in line with data.documents (every document again with `rebuild`)."""
    began = time.perf_counter()
    settings = _settings(config)
    files = document_files(config)
    with open_index(config) as store:
        stored = store.documents()
        if store.meta("settings") != settings:
            rebuild = True  # chunk size, overlap or embedding model changed: every chunk changes
        result = IndexResult(path=store.path, documents=0, chunks=0)
        pending: list[tuple[Any, str, list[Chunk]]] = []
        for doc_id, path in files:
            data = path.read_bytes()
            doc_hash = _doc_hash(config, doc_id, path, data, settings)
            old = stored.get(doc_id)
            if old is not None and old.doc_hash == doc_hash and not rebuild:
                result.unchanged += 1
                continue
            doc = read_document(config, doc_id, path, data)
            pending.append((doc, doc_hash, chunk_document(doc, *_chunk_settings(config))))
            (result.changed if old is not None else result.added).append(doc_id)
        listed = {doc_id for doc_id, _ in files}
        result.removed = sorted(d for d in stored if d not in listed)
        vectors = _vectors(store, [c for _, _, chunks in pending for c in chunks], embedder, result, log)
        upserts = [
            NewDocument(
                doc.id,
                doc.kind,
                doc.title,
                doc.groups,
                doc_hash,
                chunks,
                np.stack([vectors[c.content_hash] for c in chunks]) if chunks else np.zeros((0, 384), np.float32),
            )
            for doc, doc_hash, chunks in pending
        ]
        if upserts or result.removed or store.meta("settings") != settings:
            result.generation = store.replace_documents(upserts, result.removed, {"settings": settings})
        else:
            result.generation = store.generation()
        with store.lock:
            result.documents, result.chunks = store.conn.execute(
                "SELECT (SELECT count(*) FROM documents), (SELECT count(*) FROM chunks)"
            ).fetchone()
    result.seconds = time.perf_counter() - began
    return result


def _chunk_settings(config: ProjectConfig) -> tuple[int, int]:
    documents = config.data.documents
    return documents.chunk_chars, min(documents.overlap_chars, documents.chunk_chars // 2)


def _settings(config: ProjectConfig) -> str:
    chunk_chars, overlap = _chunk_settings(config)
    return json.dumps({"chunk_chars": chunk_chars, "overlap_chars": overlap, "embedding": EMBEDDING_MODEL})


def _doc_hash(config: ProjectConfig, doc_id: str, path: Path, data: bytes, settings: str) -> str:
    """What decides a document's chunks: its bytes, its sidecar, the access rules naming it, the settings."""
    digest = hashlib.sha256(data)
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    digest.update(b"\0sidecar\0" + (sidecar.read_bytes() if sidecar.is_file() else b""))
    rules = [r.groups for r in config.data.documents.access if any(fnmatch.fnmatch(doc_id, p) for p in r.paths)]
    digest.update(b"\0rules\0" + json.dumps(rules).encode() + b"\0settings\0" + settings.encode())
    return digest.hexdigest()


def _vectors(
    store: IndexStore,
    chunks: list[Chunk],
    embedder: Any,
    result: IndexResult,
    log: Callable[[str], None] | None,
) -> dict[str, np.ndarray]:
    """A unit vector per distinct chunk text: stored ones reused, the rest embedded now."""
    by_hash = {c.content_hash: c for c in chunks}
    vectors = store.embeddings_by_hash(by_hash)
    missing = [c for h, c in by_hash.items() if h not in vectors]
    result.reused = len(chunks) - sum(1 for c in chunks if c.content_hash not in vectors)
    if missing:
        if embedder is None:
            from slmkit.data.semantic import Embedder

            embedder = Embedder(batch_size=32)
        if log is not None:
            log(f"embedding {len(missing)} chunks with {EMBEDDING_MODEL}")
        embedded = embedder.embed([c.indexed_text for c in missing])
        vectors.update({c.content_hash: embedded[n] for n, c in enumerate(missing)})
    result.embedded = len(missing)
    return vectors
