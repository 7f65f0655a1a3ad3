"""Documents cut into chunks: on headings, then paragraphs, with a little overlap.

A heading always starts a new chunk (a chunk never mixes two sections); paragraphs of one
section are packed together up to about `chunk_chars`; only a paragraph longer than that is cut
inside, at a sentence end, else at a space. Within a section each chunk after the first repeats
the whole sentences (up to `overlap_chars`) that ended the one before, so a fact split across
a boundary is whole in at least one chunk.

A chunk's text is exactly `document.text[start:end]`: its span points at the characters a
citation names.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from slmkit.retrieval.documents import Block, Document


@dataclass(frozen=True)
class Chunk:
    id: str  # "<document id>#<n>", n counting from 1 in document order
    doc_id: str
    title: str  # the document's title
    section: str  # its heading path, "Returns > Refund window" ("" before any heading)
    start: int
    end: int
    text: str
    groups: tuple[str, ...]  # the document's; empty: public

    @property
    def content_hash(self) -> str:
        """sha256 of what is embedded and indexed: a chunk with the same hash needs no new embedding."""
        return hashlib.sha256(self.indexed_text.encode()).hexdigest()

    @property
    def heading(self) -> str:
        """Title and section path, the title said once: "Returns > Refunds"."""
        parts = self.section.split(" > ") if self.section else []
        if parts and parts[0] == self.title:
            parts = parts[1:]
        return " > ".join(p for p in (self.title, *parts) if p)

    @property
    def indexed_text(self) -> str:
        """What BM25 and the embedding read: the title and section say what the text is about."""
        return f"{self.heading}\n{self.text}" if self.heading else self.text

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "document": self.doc_id,
            "title": self.title,
            "section": self.section,
            "span": [self.start, self.end],
            "text": self.text,
            "groups": list(self.groups),
            "content_hash": self.content_hash,
        }


def chunk_document(doc: Document, chunk_chars: int, overlap_chars: int) -> list[Chunk]:
    """The document's chunks in order (none for a document without text)."""
    chunks: list[Chunk] = []
    for section, spans in _sections(doc.blocks):
        for start, end in _pack(doc.text, spans, chunk_chars, overlap_chars):
            chunks.append(
                Chunk(
                    id=f"{doc.id}#{len(chunks) + 1}",
                    doc_id=doc.id,
                    title=doc.title,
                    section=" > ".join(section),
                    start=start,
                    end=end,
                    text=doc.text[start:end],
                    groups=doc.groups,
                )
            )
    return chunks


def _sections(blocks: tuple[Block, ...]) -> Iterator[tuple[tuple[str, ...], list[tuple[int, int]]]]:
    """Consecutive blocks under the same heading path, as (path, spans)."""
    current: tuple[str, ...] | None = None
    spans: list[tuple[int, int]] = []
    for block in blocks:
        if block.section != current and spans:
            yield current or (), spans
            spans = []
        current = block.section
        spans.append((block.start, block.end))
    if spans:
        yield current or (), spans


_SENTENCE_END = re.compile(r"[.!?](?=\s)")


def _pack(text: str, spans: list[tuple[int, int]], limit: int, overlap: int) -> list[tuple[int, int]]:
    """Spans of chunks of one section: paragraphs packed up to `limit`, long ones cut, with overlap."""
    pieces: list[tuple[int, int]] = []
    cut_at = max(limit - overlap, limit // 2)  # a cut paragraph's pieces leave room to repeat a sentence
    for start, end in spans:
        pieces.extend(_cut(text, start, end, cut_at) if end - start > limit else [(start, end)])
    chunks: list[tuple[int, int]] = []
    if not pieces:
        return chunks
    start, end = pieces[0]
    for p_start, p_end in pieces[1:]:
        if p_end - start > limit:
            chunks.append((start, end))
            start = _overlap_start(text, chunks[-1], p_start, overlap, limit - (p_end - p_start))
        end = p_end
    chunks.append((start, end))
    return chunks


def _overlap_start(text: str, previous: tuple[int, int], next_start: int, overlap: int, room: int) -> int:
    """Where the next chunk starts: at the earliest sentence or line start within `overlap` characters (and
    the room left) before `next_start`, never before the previous chunk started; no overlap when no whole
    sentence fits, since a chunk opening mid-sentence ("...comes with 1 year") misleads more than it helps."""
    lowest = max(previous[0] + 1, next_start - min(overlap, max(room, 0)))
    for at in range(lowest, next_start):
        if not text[at].isspace() and text[at - 1].isspace() and (text[at - 1] == "\n" or text[at - 2] in ".!?"):
            return at
    return next_start


def _cut(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """A paragraph longer than `limit`, cut after a sentence end where one fits, else at a space."""
    out = []
    while end - start > limit:
        window = text[start : start + limit]
        ends = [m.end() for m in _SENTENCE_END.finditer(window)]
        cut = ends[-1] if ends and ends[-1] > limit // 3 else window.rfind(" ")
        cut = cut if cut > 0 else limit
        out.append((start, start + len(text[start : start + cut].rstrip())))
        start += cut
        while start < end and text[start].isspace():
            start += 1
    if start < end:
        out.append((start, end))
    return out
