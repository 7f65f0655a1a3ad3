"""The documents corpus (`data.documents`): txt, md, html and pdf files cut into retrievable chunks.

Documents are not training rows: they are what a served model can be grounded on (retrieval).
Each file is read whole (documents are small next to row exports), one file at a time, and
cut on its own structure: a heading always starts a new chunk and becomes the chunk's title,
paragraphs are packed together up to about `chunk_chars`, and only a paragraph longer than that
is cut inside, at a line, a sentence, or a space. Chunk text is plain: HTML loses its tags,
scripts and styles, Markdown its heading marks, fences, emphasis and link targets.

Every chunk says where it starts (`path:line`), so an answer grounded on it can be traced to
the line a person would edit. A path that does not exist, a glob that matches nothing, a file
of another type or a file that is not UTF-8 is a DataError naming it: a corpus silently missing
a document is worse than a build that stops.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from slmkit.config import ProjectConfig
from slmkit.errors import DataError

# One reading of data.documents.paths (which files, which types) for the corpus and the index.
from slmkit.retrieval.documents import DOCUMENT_TYPES, document_files


@dataclass(frozen=True)
class DocChunk:
    """One retrievable piece of a document; `source` is "<path as in slmkit.yaml>:<first line>"."""

    id: str  # "<path>#<n>": the document's n-th chunk, counting from 1
    source: str
    title: str  # the heading of its section, or the document's title before any heading
    text: str
    start_line: int

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "source": self.source,
            "title": self.title,
            "text": self.text,
            "start_line": self.start_line,
        }


def iter_documents(config: ProjectConfig) -> Iterator[DocChunk]:
    """Every chunk of every document under data.documents.paths, in path order, file by file.

    PDF files are read and cut by the retrieval index's reader (pypdf, one section per page), so
    the corpus and the index hold the same text for them.
    """
    settings = config.data.documents
    for shown, path in document_files(config):
        kind = DOCUMENT_TYPES[path.suffix.lower()]
        if kind == "pdf":
            yield from _pdf_chunks(config, shown, path)
            continue
        text = _read_text(shown, path)
        if kind == "html":
            title, blocks = _html_blocks(text)
        elif kind == "md":
            title, blocks = _markdown_blocks(text)
        else:
            title, blocks = "", _text_blocks(text)
        yield from _chunks(shown, blocks, title or path.stem, settings.chunk_chars)


def _pdf_chunks(config: ProjectConfig, shown: str, path: Path) -> Iterator[DocChunk]:
    from slmkit.retrieval import chunk_document, read_document

    settings = config.data.documents
    for n, chunk in enumerate(chunk_document(read_document(config, shown, path), settings.chunk_chars, 0), 1):
        yield DocChunk(f"{shown}#{n}", f"{shown}:{chunk.section}", chunk.title, chunk.text, 0)


def _read_text(shown: str, path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{shown}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x})",
            hint="save the document as UTF-8, or remove it from data.documents.paths",
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


# --- blocks: headings and paragraphs with the line each starts on ------------------------------


@dataclass
class _Block:
    heading: bool
    lines: list[tuple[int, str]] = field(default_factory=list)  # (source line, text)

    @property
    def text(self) -> str:
        return "\n".join(text for _, text in self.lines)


def _text_blocks(text: str) -> list[_Block]:
    """Paragraphs: runs of non-blank lines."""
    blocks: list[_Block] = []
    current = _Block(False)
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            current.lines.append((number, line.rstrip()))
        elif current.lines:
            blocks.append(current)
            current = _Block(False)
    if current.lines:
        blocks.append(current)
    return blocks


_ATX = re.compile(r"^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_MD_IMAGE_OR_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_MD_CODE = re.compile(r"`([^`]+)`")
_MD_QUOTE = re.compile(r"^ {0,3}> ?")


def _markdown_blocks(text: str) -> tuple[str, list[_Block]]:
    """(title, blocks): ATX and setext headings, paragraphs, fenced code kept whole; front matter skipped."""
    lines = text.split("\n")
    start, title = _front_matter(lines)
    blocks: list[_Block] = []
    current = _Block(False)
    fence: str | None = None

    def flush() -> None:
        nonlocal current
        if current.lines:
            blocks.append(current)
        current = _Block(False)

    for number, line in enumerate(lines[start:], start=start + 1):
        opening = _FENCE.match(line)
        if fence is not None:  # code is one block, blank lines and '#' lines included
            if opening and opening.group(1) == fence:
                fence = None
                flush()
            else:
                current.lines.append((number, line.rstrip()))
            continue
        if opening:
            flush()
            fence = opening.group(1)
            continue
        if not line.strip():
            flush()
            continue
        atx = _ATX.match(line)
        setext = _SETEXT.match(line)
        if atx and atx.group(2):
            flush()
            blocks.append(_Block(True, [(number, _md_inline(atx.group(2)))]))
        elif setext and len(current.lines) == 1:
            # "Title" then "=====" (or "-----"): the paragraph line above was a heading.
            blocks.append(_Block(True, current.lines))
            current = _Block(False)
        elif setext or atx:
            flush()  # a thematic break (---) or a bare '#': a boundary, no text
        else:
            current.lines.append((number, _md_inline(_MD_QUOTE.sub("", line)).rstrip()))
    flush()
    first_heading = next((b.text for b in blocks if b.heading), "")
    return title or first_heading, blocks


def _front_matter(lines: list[str]) -> tuple[int, str]:
    """(lines to skip, its title) for a YAML front matter block opening the file."""
    if not lines or lines[0].strip() != "---":
        return 0, ""
    for end in range(1, len(lines)):
        if lines[end].strip() in ("---", "..."):
            found = next((m for m in map(re.compile(r"^title:\s*(.+)$").match, lines[1:end]) if m), None)
            return end + 1, found.group(1).strip().strip("\"'") if found else ""
    return 0, ""


def _md_inline(text: str) -> str:
    text = _MD_IMAGE_OR_LINK.sub(r"\1", text)
    text = _MD_EMPHASIS.sub(r"\2", text)
    return _MD_CODE.sub(r"\1", text)


_SKIPPED = {"script", "style", "noscript", "template", "svg"}
_BREAKS = {"br", "li", "tr", "dt", "dd"}  # a new line inside the current paragraph
_BLOCKS = {
    "p", "div", "section", "article", "main", "header", "footer", "aside", "nav", "ul", "ol", "dl",
    "table", "blockquote", "pre", "figure", "figcaption", "address", "hr", "form", "fieldset", "details",
    "summary", "body",
}  # fmt: skip
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}


class _HtmlText(HTMLParser):
    """Visible text of an HTML page as blocks; headings are their own blocks."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[_Block] = []
        self.title = ""
        self._current = _Block(False)
        self._line: list[str] = []
        self._line_start = 0
        self._skip = 0
        self._pre = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIPPED:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag in _HEADINGS or tag in _BLOCKS:
            self._flush()
            self._pre += tag == "pre"
        elif tag in _BREAKS:
            self._end_line()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIPPED:
            self._skip = max(self._skip - 1, 0)
        elif tag == "title":
            self._in_title = False
        elif tag in _HEADINGS:
            self._flush(heading=True)
        elif tag in _BLOCKS:
            self._flush()
            self._pre = max(self._pre - (tag == "pre"), 0)
        elif tag in _BREAKS:
            self._end_line()

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._in_title:
            self.title = " ".join((self.title + " " + data).split())
            return
        line = self.getpos()[0]
        if self._pre:
            for k, piece in enumerate(data.split("\n")):
                if k:
                    self._end_line()
                self._add(piece, line + k, keep_spaces=True)
        else:
            leading = len(data) - len(data.lstrip())
            self._add(re.sub(r"\s+", " ", data), line + data[:leading].count("\n"), keep_spaces=False)

    def _add(self, text: str, line: int, *, keep_spaces: bool) -> None:
        if not self._line and not text.strip():
            return
        if not self._line:
            self._line_start = line
            text = text if keep_spaces else text.lstrip()
        self._line.append(text)

    def _end_line(self) -> None:
        text = "".join(self._line).rstrip()
        if text.strip():
            self._current.lines.append((self._line_start, text))
        self._line = []

    def _flush(self, heading: bool = False) -> None:
        self._end_line()
        if self._current.lines:
            self._current.heading = heading
            if heading:  # a heading reads as one line, however it was wrapped in the source
                first = self._current.lines[0][0]
                self._current.lines = [(first, " ".join(text.strip() for _, text in self._current.lines))]
            self.blocks.append(self._current)
        self._current = _Block(False)


def _html_blocks(text: str) -> tuple[str, list[_Block]]:
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    parser._flush()
    first_heading = next((b.text for b in parser.blocks if b.heading), "")
    return parser.title or first_heading, parser.blocks


# --- chunks --------------------------------------------------------------------------------------


def _chunks(shown: str, blocks: list[_Block], doc_title: str, chunk_chars: int) -> Iterator[DocChunk]:
    """Paragraphs packed up to `chunk_chars`; a heading closes the chunk before it and titles the next."""
    title = doc_title
    pending: list[_Block] = []
    count = 0

    def emit(lines: list[tuple[int, str]], joined: str) -> DocChunk:
        nonlocal count
        count += 1
        start = lines[0][0]
        return DocChunk(f"{shown}#{count}", f"{shown}:{start}", title, joined.strip(), start)

    def flush() -> Iterator[DocChunk]:
        if pending:
            lines = [line for block in pending for line in block.lines]
            yield emit(lines, "\n\n".join(block.text for block in pending))
            pending.clear()

    size = 0
    for block in blocks:
        if block.heading:
            yield from flush()
            size = 0
            title = block.text.strip()
            continue
        length = len(block.text)
        if length > chunk_chars:
            yield from flush()
            size = 0
            for piece in _split_block(block, chunk_chars):
                yield emit(piece.lines, piece.text)
            continue
        if pending and size + 2 + length > chunk_chars:
            yield from flush()
            size = 0
        size += (2 if pending else 0) + length
        pending.append(block)
    yield from flush()


def _split_block(block: _Block, chunk_chars: int) -> Iterator[_Block]:
    """A paragraph longer than a chunk, cut between lines, else between sentences, else at a space."""
    piece = _Block(False)
    size = 0
    for number, line in block.lines:
        for part in _split_line(line, chunk_chars):
            if piece.lines and size + 1 + len(part) > chunk_chars:
                yield piece
                piece, size = _Block(False), 0
            size += (1 if piece.lines else 0) + len(part)
            piece.lines.append((number, part))
    if piece.lines:
        yield piece


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _split_line(line: str, chunk_chars: int) -> list[str]:
    if len(line) <= chunk_chars:
        return [line]
    pieces = (
        run
        for sentence in _SENTENCE_END.split(line)
        for run in ([sentence] if len(sentence) <= chunk_chars else _split_words(sentence, chunk_chars))
    )
    return _pack(pieces, chunk_chars)


def _split_words(text: str, chunk_chars: int) -> list[str]:
    """Runs of whole words up to chunk_chars; a single word longer than that is cut."""
    words: list[str] = []
    for word in text.split():
        while len(word) > chunk_chars:
            words.append(word[:chunk_chars])
            word = word[chunk_chars:]
        words.append(word)
    return _pack(words, chunk_chars)


def _pack(pieces: Iterable[str], limit: int) -> list[str]:
    """Pieces joined by spaces into runs of at most `limit` characters, in order."""
    runs: list[str] = []
    current = ""
    for piece in pieces:
        if current and len(current) + 1 + len(piece) > limit:
            runs.append(current)
            current = ""
        current = f"{current} {piece}" if current else piece
    if current:
        runs.append(current)
    return runs


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
            files.add(record["source"].rsplit(":", 1)[0])
            chunks += 1
            chars += len(record["text"])
    return {"files": len(files), "chunks": chunks, "chars": chars}
