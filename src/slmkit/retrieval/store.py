"""The index on disk: one SQLite file (.slmkit/index.db) with chunks, their vectors and an FTS5 table.

Every change is one transaction (`replace_documents`): the rows of changed and removed documents
are deleted and the new ones inserted together, and the generation counter moves with them. A
process killed at any point leaves the index as it was before (SQLite's journal rolls the
transaction back on the next open), and a reader (the server) sees either the old index or the
new one, never half of each. Embeddings are computed before the transaction opens, so it holds
the write lock for milliseconds.

Access groups live in `doc_groups`, one row per (document, group), '' for a public document;
every query joins it with the caller's groups in the same SQL statement.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from slmkit.retrieval.chunking import Chunk
from slmkit.retrieval.tokens import tokens

INDEX_FILE = "index.db"
PUBLIC = ""  # the doc_groups value of a document without groups
# Fault injection for the crash test: SIGKILL this process halfway through the write transaction.
_CRASH_ENV = "SLMKIT_INDEX_CRASH_MID_WRITE"

MIGRATIONS: list[tuple[str, list[str]]] = [
    (
        "0001_index",
        [
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
            """CREATE TABLE documents (
                doc_id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                title TEXT NOT NULL,
                groups TEXT NOT NULL,
                doc_hash TEXT NOT NULL,
                chunks INTEGER NOT NULL,
                indexed_at TEXT NOT NULL)""",
            "CREATE TABLE doc_groups (doc_id TEXT NOT NULL, grp TEXT NOT NULL, PRIMARY KEY (grp, doc_id))",
            """CREATE TABLE chunks (
                id INTEGER PRIMARY KEY,
                chunk_id TEXT NOT NULL UNIQUE,
                doc_id TEXT NOT NULL,
                title TEXT NOT NULL,
                section TEXT NOT NULL,
                start INTEGER NOT NULL,
                end INTEGER NOT NULL,
                text TEXT NOT NULL,
                content_hash TEXT NOT NULL,
                tokens INTEGER NOT NULL,
                embedding BLOB NOT NULL)""",
            "CREATE INDEX chunks_doc ON chunks(doc_id)",
            "CREATE INDEX chunks_hash ON chunks(content_hash)",
            "CREATE VIRTUAL TABLE chunks_fts USING fts5(body, tokenize = 'unicode61 remove_diacritics 2')",
            "CREATE VIRTUAL TABLE chunks_terms USING fts5vocab(chunks_fts, instance)",
        ],
    ),
]


@dataclass(frozen=True)
class StoredDocument:
    doc_id: str
    kind: str
    title: str
    groups: tuple[str, ...]
    doc_hash: str
    chunks: int


@dataclass(frozen=True)
class NewDocument:
    """A document's rows to write: its record and its chunks with their unit-length embeddings."""

    doc_id: str
    kind: str
    title: str
    groups: tuple[str, ...]
    doc_hash: str
    chunks: list[Chunk]
    embeddings: np.ndarray  # (len(chunks), dim) float32


class IndexStore:
    """The index file; safe to share between threads (one connection behind a lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
        self.lock = threading.RLock()
        with self.lock:
            self._conn.execute("PRAGMA busy_timeout = 30000")
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._migrate()

    @property
    def conn(self) -> sqlite3.Connection:
        return self._conn

    def _migrate(self) -> None:
        conn = self._conn
        conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
        for name, statements in MIGRATIONS:
            conn.execute("BEGIN IMMEDIATE")
            try:
                if not conn.execute("SELECT 1 FROM schema_migrations WHERE name = ?", (name,)).fetchone():
                    for statement in statements:
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_migrations VALUES (?, ?)", (name, _now()))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # --- reads ---------------------------------------------------------------------------

    def meta(self, key: str, default: str | None = None) -> str | None:
        with self.lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def generation(self) -> int:
        """Moves with every committed change: readers reload their cached vectors when it does."""
        return int(self.meta("generation", "0") or 0)

    def documents(self) -> dict[str, StoredDocument]:
        with self.lock:
            rows = self._conn.execute("SELECT doc_id, kind, title, groups, doc_hash, chunks FROM documents").fetchall()
        return {r[0]: StoredDocument(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4], r[5]) for r in rows}

    def embeddings_by_hash(self, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """Stored vectors of chunks whose indexed text is unchanged: no need to embed them again."""
        wanted = list(dict.fromkeys(hashes))
        found: dict[str, np.ndarray] = {}
        with self.lock:
            for lo in range(0, len(wanted), 500):
                part = wanted[lo : lo + 500]
                marks = ",".join("?" * len(part))
                for digest, blob in self._conn.execute(
                    f"SELECT content_hash, embedding FROM chunks WHERE content_hash IN ({marks})", part
                ):
                    found[digest] = np.frombuffer(blob, dtype=np.float32)
        return found

    def visible_filter(self, groups: Sequence[str]) -> tuple[str, list[str]]:
        """SQL for 'this chunk's document is public or shares a group with the caller', and its parameters."""
        allowed = [PUBLIC, *dict.fromkeys(g for g in groups if g)]
        marks = ",".join("?" * len(allowed))
        return f"doc_id IN (SELECT doc_id FROM doc_groups WHERE grp IN ({marks}))", allowed

    def chunk_rows(self, ids: Sequence[int]) -> dict[int, Chunk]:
        """The chunks with these row ids."""
        out: dict[int, Chunk] = {}
        with self.lock:
            for lo in range(0, len(ids), 500):
                part = list(ids[lo : lo + 500])
                marks = ",".join("?" * len(part))
                rows = self._conn.execute(
                    "SELECT c.id, c.chunk_id, c.doc_id, c.title, c.section, c.start, c.end, c.text, d.groups "
                    f"FROM chunks c JOIN documents d USING (doc_id) WHERE c.id IN ({marks})",
                    part,
                ).fetchall()
                for r in rows:
                    out[r[0]] = Chunk(r[1], r[2], r[3], r[4], r[5], r[6], r[7], tuple(json.loads(r[8])))
        return out

    # --- the one write -------------------------------------------------------------------

    def replace_documents(
        self, upserts: Sequence[NewDocument], removed: Sequence[str], settings: dict[str, str]
    ) -> int:
        """Delete the rows of `removed` and of every upserted document, insert the new rows, record
        `settings`, move the generation: all in one transaction. Returns the new generation."""
        conn = self._conn
        gone = list(dict.fromkeys([*removed, *(d.doc_id for d in upserts)]))
        with self.lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for doc_id in gone:
                    ids = [r[0] for r in conn.execute("SELECT id FROM chunks WHERE doc_id = ?", (doc_id,))]
                    conn.executemany("DELETE FROM chunks_fts WHERE rowid = ?", [(i,) for i in ids])
                    conn.execute("DELETE FROM chunks WHERE doc_id = ?", (doc_id,))
                    conn.execute("DELETE FROM doc_groups WHERE doc_id = ?", (doc_id,))
                    conn.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))
                if os.environ.get(_CRASH_ENV) == "1" and gone:
                    os.kill(os.getpid(), signal.SIGKILL)
                for doc in upserts:
                    self._insert(doc)
                for key, value in settings.items():
                    conn.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, value))
                generation = self.generation() + 1
                conn.execute("INSERT OR REPLACE INTO meta VALUES ('generation', ?)", (str(generation),))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return generation

    def _insert(self, doc: NewDocument) -> None:
        conn = self._conn
        conn.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?)",
            (doc.doc_id, doc.kind, doc.title, json.dumps(list(doc.groups)), doc.doc_hash, len(doc.chunks), _now()),
        )
        conn.executemany("INSERT INTO doc_groups VALUES (?, ?)", [(doc.doc_id, g) for g in (doc.groups or (PUBLIC,))])
        for chunk, vector in zip(doc.chunks, doc.embeddings, strict=True):
            body = chunk.indexed_text
            cursor = conn.execute(
                "INSERT INTO chunks (chunk_id, doc_id, title, section, start, end, text, content_hash, tokens, "
                "embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    chunk.id,
                    chunk.doc_id,
                    chunk.title,
                    chunk.section,
                    chunk.start,
                    chunk.end,
                    chunk.text,
                    chunk.content_hash,
                    len(tokens(body)),
                    np.ascontiguousarray(vector, dtype=np.float32).tobytes(),
                ),
            )
            conn.execute("INSERT INTO chunks_fts (rowid, body) VALUES (?, ?)", (cursor.lastrowid, body))

    def close(self) -> None:
        with self.lock:
            self._conn.close()

    def __enter__(self) -> IndexStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
