"""The documents corpus: md, html and txt files become the retrieval index's chunks, each under its
section with the exact span of its text and the line it starts on; paths that name nothing usable stop
the build."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import pytest

from slmkit.config import ProjectConfig, load_config
from slmkit.data.documents import DocChunk, iter_documents
from slmkit.errors import DataError
from tests.conftest import write_project
from tests.data.factories import BASE_MODEL

GUIDE_MD = """\
---
title: "Returns guide"
---
Read this before you send anything back, see [the form](https://example.com/form).

# Returns

You can return any item within **30 days** of delivery.

Items must be unused.

Refunds
-------

Refunds reach your card in `5` working days.

```
# a comment in code, not a heading

refund --order ORD-123456
```

## Shipping

> Returns ship free with the prepaid label.
"""

FAQ_HTML = """\
<!doctype html>
<html><head><title>Help &amp; FAQ</title>
<style>p { color: red }</style>
<script>document.write("<p>tracking pixel</p>");</script>
</head>
<body>
<h1>Warranty
  terms</h1>
<p>Every device has a
   two-year warranty &mdash; keep the receipt.</p>
<ul><li>Register online</li><li>Keep the box</li></ul>
<h2>Claims</h2>
<p>Email <b>support</b> with your order id.</p>
<!-- internal: remove before publishing -->
</body></html>
"""


def _config(root: Path, files: dict[str, bytes | str], paths: list[str], chunk_chars: int = 1200) -> ProjectConfig:
    write_project(
        root,
        BASE_MODEL,
        rows=1,
        overrides={"data.documents.paths": paths, "data.documents.chunk_chars": chunk_chars},
    )
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    return load_config(root)


def test_markdown_chunks_follow_headings_with_exact_spans_and_lines(tmp_path):
    config = _config(tmp_path / "p", {"docs/guide.md": GUIDE_MD}, ["docs/guide.md"])
    chunks = list(iter_documents(config))
    assert [(c.section, c.source) for c in chunks] == [
        ("", "docs/guide.md:4"),  # before any heading
        ("Returns", "docs/guide.md:8"),
        ("Returns > Refunds", "docs/guide.md:15"),  # a setext heading, under the ATX one
        ("Returns > Shipping", "docs/guide.md:25"),
    ]
    assert {c.title for c in chunks} == {"Returns guide"}  # the front matter's title
    for chunk in chunks:  # a chunk is exactly the characters of the file its span names
        start, end = chunk.as_dict()["span"]
        assert GUIDE_MD[start:end] == chunk.text
        assert GUIDE_MD.count("\n", 0, start) + 1 == chunk.start_line
    by_section = {c.section: c.text for c in chunks}
    assert by_section["Returns"] == "You can return any item within **30 days** of delivery.\n\nItems must be unused."
    # The fenced code stays whole and its '#' line is text, not a heading; heading lines are no text.
    assert "# a comment in code, not a heading\n\nrefund --order ORD-123456" in by_section["Returns > Refunds"]
    assert not any(t.startswith(("#", "Refunds\n---")) for t in by_section.values())
    assert not any("title:" in t for t in by_section.values())  # front matter is not text
    assert [c.id for c in chunks] == [f"docs/guide.md#{n}" for n in range(1, 5)]
    assert chunks[1].as_dict() == {
        "id": "docs/guide.md#2",
        "document": "docs/guide.md",
        "title": "Returns guide",
        "section": "Returns",
        "span": [GUIDE_MD.index("You can return"), GUIDE_MD.index("unused.") + len("unused.")],
        "groups": [],
        "source": "docs/guide.md:8",
        "start_line": 8,
        "text": chunks[1].text,
    }


def test_html_loses_tags_scripts_and_styles_and_keeps_headings_as_sections(tmp_path):
    chunks = list(iter_documents(_config(tmp_path / "p", {"help/faq.html": FAQ_HTML}, ["help/faq.html"])))
    # The wrapped <h1> is one heading; each chunk points at the page line its first words are on.
    assert [(c.section, c.source) for c in chunks] == [
        ("Warranty terms", "help/faq.html:9"),
        ("Warranty terms > Claims", "help/faq.html:13"),
    ]
    first = " ".join(chunks[0].text.split())
    assert first.startswith("Every device has a two-year warranty — keep the receipt.")
    assert "Register online" in first and "Keep the box" in first
    assert " ".join(chunks[1].text.replace("*", "").split()) == "Email support with your order id."
    everything = " ".join(c.text + c.title + c.section for c in chunks)
    for hidden in ("tracking pixel", "color: red", "internal", "<", "&amp;"):
        assert hidden not in everything


def test_text_is_packed_into_chunks_of_about_chunk_chars_on_paragraph_boundaries(tmp_path):
    paragraphs = [f"Paragraph {n} " + " ".join(f"word{n}x{k}" for k in range(12)) + "." for n in range(30)]
    long_line = "A sentence that goes on. " * 40  # one 1,000-character paragraph, longer than a chunk
    text = "\n\n".join(paragraphs[:15]) + "\n\n" + long_line + "\n\n" + "\n\n".join(paragraphs[15:]) + "\n"
    config = _config(tmp_path / "p", {"notes/policy.txt": text}, ["notes/*.txt"], chunk_chars=300)
    chunks = list(iter_documents(config))
    assert all(len(c.text) <= 300 for c in chunks)
    assert all(c.title == "policy" for c in chunks)  # a text file's title is its name
    spans = [c.as_dict()["span"] for c in chunks]
    assert all(text[start:end] == c.text for (start, end), c in zip(spans, chunks, strict=True))
    # In order, overlapping only by whole sentences repeated, and nothing lost between them.
    for (start, end), (next_start, next_end) in pairwise(spans):
        assert start < next_start <= end + 2 and end < next_end
        assert text[next_start - 2 : next_start] in (". ", "\n\n") or next_start == end + 2
    assert text[spans[0][0] : spans[-1][1]] == text.strip()
    # Paragraphs are never cut unless longer than a chunk, and short ones are packed together.
    for paragraph in paragraphs:
        assert any(paragraph in c.text for c in chunks)
    assert any(c.text.count("Paragraph ") >= 2 for c in chunks)
    for chunk in chunks:  # paragraph n starts on line 2n + 1 (one more paragraph before it from 15 on)
        if chunk.text.startswith("Paragraph "):
            n = int(chunk.text.split()[1])
            assert chunk.start_line == 2 * (n + (n >= 15)) + 1
    cut = [c for c in chunks if c.text.startswith("A sentence that goes on.")]
    assert len(cut) >= 4 and all(c.source == f"notes/policy.txt:{2 * 15 + 1}" for c in cut)


def test_globs_find_files_in_sorted_order_each_once(tmp_path):
    files = {"kb/b.md": "# B\n\nbee\n", "kb/a.md": "# A\n\nay\n", "kb/deep/c.txt": "sea\n"}
    config = _config(tmp_path / "p", files, ["kb/**/*.md", "kb/a.md", "kb/deep/*.txt"])
    assert [(c.source, c.text) for c in iter_documents(config)] == [
        ("kb/a.md:3", "ay"),
        ("kb/b.md:3", "bee"),
        ("kb/deep/c.txt:1", "sea"),
    ]


@pytest.mark.parametrize(
    ("files", "paths", "words"),
    [
        ({}, ["docs/missing.md"], r"'docs/missing\.md': file not found"),
        ({"docs/a.md": "x"}, ["docs/*.html"], r"'docs/\*\.html' matches no files"),
        (
            {"docs/a.md": "x", "docs/logo.png": b"\x89PNG"},
            ["docs/*"],
            r"docs/logo\.png: a '\.png' file.*matched by 'docs/\*'",
        ),
        ({"docs/a.md": "x"}, ["docs"], r"'docs' is a folder"),
        ({"docs/old.txt": b"fine line\ncaf\xe9\n"}, ["docs/old.txt"], r"docs/old\.txt:2: not valid UTF-8"),
    ],
    ids=["missing", "glob-matches-nothing", "other-type", "folder", "not-utf8"],
)
def test_paths_that_name_nothing_usable_are_data_errors(tmp_path, files, paths, words):
    config = _config(tmp_path / "p", files, paths)
    with pytest.raises(DataError, match=words):
        list(iter_documents(config))


def test_no_documents_configured_gives_no_chunks(tmp_path):
    chunks: list[DocChunk] = list(iter_documents(_config(tmp_path / "p", {}, [])))
    assert chunks == []
