"""Documents read for retrieval: txt, md, html (trafilatura) and pdf (pypdf), with their access groups.

A `Document` holds the text its chunks' character spans point into: the file itself for txt
and md (so a citation's span can be checked against the file a person edits), the extracted
text for html (trafilatura's main-content extraction, as Markdown, so headings survive) and pdf
(pypdf, one section per page). Its `blocks` are paragraphs, each under the path of headings
it sits in.

Access groups come from three places, all of which apply: `groups:` in a Markdown file's front
matter, a sidecar `<file>.meta.yaml` holding `groups:` (for any type, pdf and html included),
and `data.documents.access` rules in slmkit.yaml matching the path. A document with no group is
public: every caller may see it.
"""

from __future__ import annotations

import fnmatch
import glob
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from slmkit.config import ProjectConfig
from slmkit.errors import DataError

DOCUMENT_TYPES = {
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
}
SIDECAR_SUFFIX = ".meta.yaml"
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class Block:
    """A paragraph (or a fenced code block, whole): its heading path and its span in Document.text."""

    section: tuple[str, ...]
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    id: str  # the path relative to slmkit.yaml, as written in provenance and citations
    kind: str
    title: str
    text: str
    groups: tuple[str, ...]  # empty: public
    blocks: tuple[Block, ...]
    file_sha256: str  # of the file's bytes; with the groups and chunk settings it decides re-indexing


def document_files(config: ProjectConfig) -> list[tuple[str, Path]]:
    """(document id, file) for every file data.documents.paths names, each once, in order.

    A path that does not exist, a glob that matches nothing, a folder or a file of another type
    is a DataError naming it: a corpus silently missing a document is worse than one that stops.
    Sidecars (`*.meta.yaml`) beside the documents are never documents themselves.
    """
    files: dict[Path, str] = {}
    for pattern in config.data.documents.paths:
        resolved = config.resolve_path(pattern)
        if _GLOB_CHARS.search(pattern):
            matches = sorted(
                Path(p)
                for p in glob.glob(str(resolved), recursive=True)
                if Path(p).is_file() and not p.endswith(SIDECAR_SUFFIX)
            )
            if not matches:
                raise DataError(
                    f"data.documents.paths: '{pattern}' matches no files ({resolved})",
                    hint="fix the pattern (relative to slmkit.yaml; ** matches folders), or remove it",
                )
        elif resolved.is_dir():
            raise DataError(
                f"data.documents.paths: '{pattern}' is a folder, not a file",
                hint=f"name the files, or use a pattern such as {pattern.rstrip('/')}/**/*.md",
            )
        elif not resolved.is_file():
            raise DataError(
                f"data.documents.paths: '{pattern}': file not found ({resolved})",
                hint="fix the path (relative to slmkit.yaml), or remove it from data.documents.paths",
            )
        else:
            matches = [resolved]
        for path in matches:
            shown = _shown(path, config.root)
            if path.suffix.lower() not in DOCUMENT_TYPES:
                raise DataError(
                    f"{shown}: a '{path.suffix or '(no extension)'}' file; documents are .txt, .md, .html or .pdf"
                    + (f" (matched by '{pattern}')" if path != resolved else ""),
                    hint="narrow the pattern in data.documents.paths, or convert the file to text, Markdown, HTML "
                    "or PDF",
                )
            files.setdefault(path.resolve(), shown)
    return [(shown, path) for path, shown in files.items()]


def read_document(config: ProjectConfig, doc_id: str, path: Path, data: bytes | None = None) -> Document:
    """The document at `path`: its text, title, paragraphs under their headings, and access groups."""
    data = path.read_bytes() if data is None else data
    kind = DOCUMENT_TYPES[path.suffix.lower()]
    front: dict[str, object] = {}
    if kind == "pdf":
        title, text, blocks = _pdf(doc_id, data)
    else:
        raw = _decode(doc_id, data)
        if kind == "html":
            title, text = _html(raw)
            _, blocks, _ = _markdown(text)
        elif kind == "md":
            text = raw
            front, blocks, title = _markdown(text)
        else:
            text, blocks, title = raw, _paragraphs(raw, 0, len(raw), ()), ""
    sidecar = _sidecar(doc_id, path)
    title = str(sidecar.get("title") or front.get("title") or title or path.stem).strip()
    groups = _groups(doc_id, "front matter", front.get("groups"))
    groups += _groups(doc_id + SIDECAR_SUFFIX, "sidecar", sidecar.get("groups"))
    for rule in config.data.documents.access:
        if any(fnmatch.fnmatch(doc_id, pattern) for pattern in rule.paths):
            groups += tuple(rule.groups)
    return Document(
        id=doc_id,
        kind=kind,
        title=" ".join(title.split()),
        text=text,
        groups=tuple(sorted(set(groups))),
        blocks=tuple(blocks),
        file_sha256=hashlib.sha256(data).hexdigest(),
    )


def _shown(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _decode(doc_id: str, data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{doc_id}:{line}: not valid UTF-8 (byte 0x{data[exc.start]:02x})",
            hint="save the document as UTF-8, or remove it from data.documents.paths",
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _groups(where: str, what: str, value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) and "," not in value:
        value = [value]  # one group; "staff, finance" is a mistake for a list, and refused below
    if not isinstance(value, list) or not all(isinstance(g, str) and g.strip() for g in value):
        raise DataError(
            f"{where}: 'groups' in the {what} must be a list of group names (got {value!r})",
            hint="write e.g. groups: [staff, finance]",
        )
    return tuple(g.strip() for g in value)


def _sidecar(doc_id: str, path: Path) -> dict[str, object]:
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if not sidecar.is_file():
        return {}
    try:
        value = yaml.safe_load(sidecar.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise DataError(f"{doc_id}{SIDECAR_SUFFIX}: not valid YAML ({exc})", hint="fix or remove the sidecar") from None
    if not isinstance(value, dict) or set(value) - {"groups", "title"}:
        raise DataError(
            f"{doc_id}{SIDECAR_SUFFIX}: a sidecar holds a mapping with 'groups' and 'title' only",
            hint="write e.g. groups: [staff]",
        )
    return value


# --- text and Markdown: paragraphs and headings with character spans ----------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)\s*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_INLINE = [
    (re.compile(r"!?\[([^\]]*)\]\([^)]*\)"), r"\1"),
    (re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1"), r"\2"),
    (re.compile(r"`([^`]+)`"), r"\1"),
]


def _lines(text: str, start: int, end: int) -> list[tuple[int, str]]:
    """(offset, line without its newline) for the lines of text[start:end]."""
    out, pos = [], start
    for line in text[start:end].split("\n"):
        out.append((pos, line))
        pos += len(line) + 1
    return out


def _paragraphs(text: str, start: int, end: int, section: tuple[str, ...]) -> list[Block]:
    """Runs of non-blank lines in text[start:end]."""
    blocks, first, last = [], None, 0
    for offset, line in _lines(text, start, end):
        if line.strip():
            first = offset if first is None else first
            last = offset + len(line.rstrip())
        elif first is not None:
            blocks.append(Block(section, first, last))
            first = None
    if first is not None:
        blocks.append(Block(section, first, last))
    return blocks


def _heading(text: str) -> str:
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return " ".join(text.split())


def _markdown(text: str) -> tuple[dict[str, object], list[Block], str]:
    """(front matter, paragraphs under their heading paths, first heading); fences stay whole."""
    lines = _lines(text, 0, len(text))
    front, skip = _front_matter(text, lines)
    blocks: list[Block] = []
    path: list[tuple[int, str]] = []  # (level, heading)
    first_heading = ""
    para: list[tuple[int, str]] = []
    fence: str | None = None
    fence_start = 0

    def section() -> tuple[str, ...]:
        return tuple(h for _, h in path)

    def flush() -> None:
        if para:
            blocks.append(Block(section(), para[0][0], para[-1][0] + len(para[-1][1].rstrip())))
            para.clear()

    def open_heading(level: int, heading: str) -> None:
        nonlocal first_heading
        while path and path[-1][0] >= level:
            path.pop()
        path.append((level, heading))
        first_heading = first_heading or heading

    for offset, line in lines[skip:]:
        opening = _FENCE.match(line)
        if fence is not None:
            if opening and opening.group(1) == fence:
                fence = None
                blocks.append(Block(section(), fence_start, offset + len(line.rstrip())))
            continue
        if opening:
            flush()
            fence, fence_start = opening.group(1), offset
            continue
        if not line.strip():
            flush()
            continue
        atx, setext = _ATX.match(line), _SETEXT.match(line)
        if atx and atx.group(2):
            flush()
            open_heading(len(atx.group(1)), _heading(atx.group(2)))
        elif setext and len(para) == 1:  # "Title" then "====": the line above was a heading
            heading = _heading(para.pop()[1])
            open_heading(1 if setext.group(1)[0] == "=" else 2, heading)
        elif setext or atx:
            flush()  # a thematic break or a bare '#': a boundary, no text
        else:
            para.append((offset, line))
    if fence is not None:  # an unclosed fence runs to the end
        blocks.append(Block(section(), fence_start, len(text.rstrip())))
    flush()
    return front, blocks, first_heading


def _front_matter(text: str, lines: list[tuple[int, str]]) -> tuple[dict[str, object], int]:
    """(its YAML mapping, lines to skip) for a front matter block opening the file."""
    if not lines or lines[0][1].strip() != "---":
        return {}, 0
    for end in range(1, len(lines)):
        if lines[end][1].strip() in ("---", "..."):
            try:
                value = yaml.safe_load("\n".join(line for _, line in lines[1:end])) or {}
            except yaml.YAMLError:
                value = {}
            return (value if isinstance(value, dict) else {}), end + 1
    return {}, 0


# --- html and pdf ---------------------------------------------------------------------------------


_HTML_HEADING = re.compile(r"(<h[1-6](?:\s[^>]*)?>)(.*?)(</h[1-6]\s*>)", re.IGNORECASE | re.DOTALL)


def _html(raw: str) -> tuple[str, str]:
    """(title, main text as Markdown) by trafilatura: navigation, scripts and boilerplate dropped."""
    import trafilatura

    # A heading wrapped over lines in the page is one heading: trafilatura would keep the line break, and
    # its second line would read as a paragraph.
    raw = _HTML_HEADING.sub(lambda m: m.group(1) + " ".join(m.group(2).split()) + m.group(3), raw)
    text = trafilatura.extract(
        raw, output_format="markdown", include_formatting=True, include_links=False, include_images=False,
        include_tables=True, include_comments=False, favor_recall=True,
    )  # fmt: skip
    metadata = trafilatura.extract_metadata(raw)
    title = (metadata.title if metadata is not None and metadata.title else "") or ""
    return title, (text or "").replace("\r\n", "\n")


def _pdf(doc_id: str, data: bytes) -> tuple[str, str, list[Block]]:
    """(title, text, paragraphs): pypdf's text of each page, one section per page."""
    import io

    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [page.extract_text() or "" for page in reader.pages]
        metadata: Any = reader.metadata or {}
        title = str(metadata.get("/Title") or "")
    except (PdfReadError, ValueError, OSError) as exc:
        raise DataError(f"{doc_id}: not a readable PDF ({exc})", hint="re-export the PDF, or remove it") from None
    text, blocks = "", []
    for number, page in enumerate(pages, start=1):
        page = page.replace("\r\n", "\n").strip()
        if not page:
            continue
        start = len(text) + (2 if text else 0)
        text = f"{text}\n\n{page}" if text else page
        blocks.extend(_paragraphs(text, start, len(text), (f"page {number}",)))
    return title, text, blocks
