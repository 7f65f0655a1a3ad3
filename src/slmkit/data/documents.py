"""The documents corpus (`data.documents`): corpus.jsonl, the same chunks the retrieval index holds.

Documents are not training rows: they are what a served model is grounded on (retrieval). One
reader and one chunker serve the corpus and the index (`slmkit.retrieval`): txt and md as the
file's own text, html through trafilatura, pdf through pypdf; a heading starts a chunk,
paragraphs are packed up to `chunk_chars` with `overlap_chars` of whole sentences repeated. So a
corpus record and an index chunk with the same id are the same characters.

Every record keeps its provenance: the document, its section (heading path), the character span
its text is exactly `text[start:end]` of (the file for txt and md, the extracted text for html
and pdf), its access groups, and `source`, where a person would look: `path:line` of the chunk's
first line (for html the line in the page where its first words stand, when they do), `path:page N`
for pdf. A path that does not exist, a glob that matches nothing, a file of another type or a
file that is not UTF-8 is a DataError naming it: a corpus silently missing a document is worse
than a build that stops.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from slmkit.config import ProjectConfig
from slmkit.retrieval.chunking import Chunk, chunk_document
from slmkit.retrieval.documents import Document, document_files, read_document


@dataclass(frozen=True)
class DocChunk:
    """One chunk of the corpus: the index's chunk with where a person finds it."""

    chunk: Chunk
    source: str  # "<path>:<line>" (txt, md; html where found), "<path>:page N" (pdf), else "<path>"
    start_line: int | None  # the line of the file the chunk starts on; None where unknown (pdf, some html)

    @property
    def id(self) -> str:
        return self.chunk.id

    @property
    def title(self) -> str:
        return self.chunk.title

    @property
    def section(self) -> str:
        return self.chunk.section

    @property
    def text(self) -> str:
        return self.chunk.text

    def as_dict(self) -> dict[str, Any]:
        c = self.chunk
        return {
            "id": c.id,
            "document": c.doc_id,
            "title": c.title,
            "section": c.section,
            "span": [c.start, c.end],
            "groups": list(c.groups),
            "source": self.source,
            "start_line": self.start_line,
            "text": c.text,
        }


def iter_documents(config: ProjectConfig) -> Iterator[DocChunk]:
    """Every chunk of every document under data.documents.paths, in path order, file by file."""
    settings = config.data.documents
    for shown, path in document_files(config):
        document = read_document(config, shown, path)
        raw = _raw_text(path) if document.kind == "html" else None
        for chunk in chunk_document(document, settings.chunk_chars, settings.overlap_chars):
            yield _located(document, chunk, raw)


def _located(document: Document, chunk: Chunk, raw: str | None) -> DocChunk:
    if document.kind in ("txt", "md"):
        line = document.text.count("\n", 0, chunk.start) + 1
        return DocChunk(chunk, f"{document.id}:{line}", line)
    if document.kind == "pdf":
        return DocChunk(chunk, f"{document.id}:{chunk.section}", None)
    found = _line_in_page(raw or "", chunk.text)
    return DocChunk(chunk, f"{document.id}:{found}" if found else document.id, found)


def _raw_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8-sig", errors="replace").replace("\r\n", "\n").replace("\r", "\n")


_WORDS = re.compile(r"\w[\w'’-]*")


def _line_in_page(raw: str, text: str) -> int | None:
    """The line of an HTML page where the chunk's first words stand (markup or line breaks between them
    allowed); None when the extraction changed them (an entity, a list mark) beyond finding."""
    words = _WORDS.findall(text)[:6]
    if not words:
        return None
    found = re.search(r"(?:\s|<[^>]*>)+".join(map(re.escape, words)), raw)
    return raw.count("\n", 0, found.start()) + 1 if found else None


def write_corpus(
    config: ProjectConfig, scrub: Callable[[dict[str, Any]], dict[str, Any]], path: Path
) -> dict[str, Any]:
    """corpus.jsonl: every chunk of data.documents, through `scrub` (PII removal); returns its counts."""
    files: set[str] = set()
    chunks = chars = 0
    with path.open("w", encoding="utf-8") as fh:
        for chunk in iter_documents(config):
            record = scrub(chunk.as_dict())
            fh.write(json.dumps(record, ensure_ascii=False) + "\n")
            files.add(record["document"])
            chunks += 1
            chars += len(record["text"])
    return {"files": len(files), "chunks": chunks, "chars": chars}
