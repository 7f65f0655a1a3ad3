"""The data card (report.html): rendered from a realistic report.json, checked in headless Chromium.

The browser tests load the page from disk the way a reviewer would and assert on the DOM Chromium
built, so a markup error, an unescaped input or a chart with the wrong number of bars shows up as
the reader would see it. CI installs Debian's chromium (.ci/run); elsewhere they skip, saying why.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from slmkit.data.card import render_card, write_card
from slmkit.errors import StageError

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (CI installs it: apt-get install chromium)"
)

XSS = '<script>alert("owned")</script> my card was charged twice'
LABELS = ["billing", "shipping", "returns", "technical", "account", "out_of_scope"]
SPLIT_LABELS = {
    "train": [120, 100, 95, 130, 84, 30],
    "validation": [13, 11, 10, 13, 9, 3],
    "gold": [24, 20, 18, 25, 16, 6],
}
EDGES = [0, 100, 200, 300, 400, 600, 800, 1200, 2000]
CHAR_COUNTS = {
    "train": [40, 160, 170, 90, 60, 25, 10, 4],
    "validation": [5, 16, 17, 9, 7, 3, 2, 0],
    "gold": [8, 30, 33, 17, 12, 6, 3, 0],
}


def realistic_report() -> dict[str, Any]:
    """A report.json as the builder writes it for 778 support tickets: every section present."""
    by_reason = {
        "json": 3,
        "schema": 4,
        "duplicate": 20,
        "near_duplicate": 12,
        "semantic_duplicate": 2,
        "conflict": 7,
        "gold_leak": 3,
    }
    stages = [
        ("read", 778, 775),
        ("validate", 775, 771),
        ("pii", 771, 771),
        ("exact dedup", 771, 751),
        ("near dedup", 751, 739),
        ("semantic dedup", 739, 737),
        ("conflicts", 737, 730),
        ("gold leak", 730, 727),
        ("split", 727, 727),
    ]
    return {
        "task": "support-tickets",
        "version": "ds-0123abcd4567",
        "built_with": "slmkit 0.1.0",
        "counts": {
            "input": 778,
            "blank_lines": 1,
            "kept": 727,
            "rejected": 51,
            "train": 559,
            "validation": 59,
            "gold": 109,
            "gold_from_sources": 109,
            "rejected_by_reason": by_reason,
        },
        "reject_kinds": {kind: f"what {kind} means" for kind in by_reason} | {"json": "the line is not a JSON object"},
        "stages": [{"stage": name, "in": n_in, "out": n_out, "rejected": n_in - n_out} for name, n_in, n_out in stages],
        "by_label": {split: dict(zip(LABELS, values, strict=True)) for split, values in SPLIT_LABELS.items()},
        "pii": {
            "enabled": True,
            "rows_with_pii": 80,
            "by_type": {"EMAIL": 42, "PHONE": 22, "NAME": 48, "IBAN": 3},
            "entities": ["EMAIL", "PHONE", "NAME", "IBAN", "CREDIT_CARD"],
            "ner": "names",
            "canaries": {"configured": 1, "survived": 0},
        },
        "lengths": {
            "input_chars": {"edges": EDGES, "counts": CHAR_COUNTS, "p50": 240, "p95": 610, "max": 1900},
            "tokens": {
                "edges": [0, 64, 128, 192, 256, 384, 512],
                "counts": {"train": [30, 210, 190, 80, 39, 10], "validation": [3, 22, 20, 9, 4, 1]},
                "p50": 150,
                "p95": 330,
                "max": 505,
            },
        },
        "duplicates": {
            "exact": {"clusters": 18, "removed": 20},
            "near": {"clusters": 11, "removed": 12, "threshold": 0.8},
            "semantic": {"clusters": 2, "removed": 2, "threshold": 0.95},
            "examples": [
                {
                    "kind": "near",
                    "similarity": 0.86,
                    "kept": {
                        "source": "data/tickets.jsonl:31",
                        "id": "T-10031",
                        "input": "Subject: refund\n" + "x" * 400,
                    },
                    "removed": [{"source": "data/tickets.jsonl:77", "id": "T-10077", "input": XSS, "similarity": 0.86}],
                },
                {
                    "kind": "semantic",
                    "similarity": 0.97,
                    "kept": {"source": "data/tickets.jsonl:5", "id": "T-10005", "input": "Where is my parcel?"},
                    "removed": [
                        {"source": "data/extra.csv:3", "id": "X-3", "input": "Where's my package?", "similarity": 0.97},
                        {
                            "source": "data/extra.csv:9",
                            "id": "X-9",
                            "input": "where is my parcel??",
                            "similarity": 0.96,
                        },
                    ],
                },
            ],
        },
        "conflicts": {
            "clusters": 3,
            "rows": 7,
            "examples": [
                {
                    "kind": "exact",
                    "rows": [
                        {
                            "source": "data/tickets.jsonl:12",
                            "id": "T-10012",
                            "input": "My AeroBook will not charge",
                            "output": {"category": "technical", "priority": "high"},
                        },
                        {
                            "source": "data/extra.csv:4",
                            "id": "X-4",
                            "input": "My AeroBook will not charge",
                            "output": {"category": "returns", "priority": "high"},
                        },
                    ],
                }
            ],
        },
        "splits": {"seed": 13, "stratify": True, "group_by": None, "gold_hash": "ab" * 32},
        "sources": [
            {"path": "data/tickets.jsonl", "format": "jsonl", "rows": 699, "blank_lines": 1, "sha256": "cd" * 32},
            {"path": "data/tickets_extra.csv", "format": "csv", "rows": 79, "blank_lines": 0, "sha256": "ef" * 32},
        ],
        "documents": {"files": 3, "chunks": 12, "chars": 9000},
    }


def sparse_report() -> dict[str, Any]:
    """An older or smaller build: PII off, no semantic dedup, no lengths, no documents, no conflicts."""
    report = realistic_report()
    for key in ("lengths", "documents", "conflicts", "reject_kinds"):
        del report[key]
    report["pii"] = {"enabled": False}
    del report["duplicates"]["semantic"]
    report["stages"] = [s for s in report["stages"] if s["stage"] not in {"pii", "semantic dedup"}]
    return report


def dump_dom(html_path: Path, tmp_path: Path) -> str:
    """The DOM headless Chromium builds from the page, opened from disk with no network."""
    assert CHROMIUM is not None
    result = subprocess.run(
        [*_chromium_args(tmp_path), "--dump-dom", html_path.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def _chromium_args(tmp_path: Path) -> list[str]:
    return [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ]


def chart(dom: str, name: str) -> str:
    """The markup of one chart, by its data-chart name."""
    match = re.search(rf'<svg[^>]*data-chart="{re.escape(name)}".*?</svg>', dom, re.S)
    assert match, f"chart {name!r} is not on the page"
    return match.group(0)


def bars(svg: str) -> int:
    return len(re.findall(r'<rect class="bar\b', svg))


def section(dom: str, anchor: str) -> str:
    match = re.search(rf'<section id="{anchor}".*?</section>', dom, re.S)
    assert match, f"section {anchor!r} is not on the page"
    return match.group(0)


# ----------------------------------------------------------------------------- without a browser


def test_same_report_gives_byte_identical_html_and_writes_atomically(tmp_path):
    report = realistic_report()
    first, second = render_card(report), render_card(copy.deepcopy(report))
    assert first == second
    target = tmp_path / "dataset" / "report.html"
    write_card(report, target)
    assert target.read_text(encoding="utf-8") == first
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temp file left behind
    assert target.stat().st_mode & 0o777 == 0o644  # readable by whoever reviews the dataset


def test_page_is_self_contained():
    page = render_card(realistic_report())
    assert "<script" not in page.lower()
    assert not re.search(r'(src|href)="(https?:)?//', page), "the page must not load anything from the network"
    assert "@import" not in page and "url(" not in page


def test_report_without_counts_is_a_clear_error():
    with pytest.raises(StageError, match="no 'counts'"):
        render_card({"task": "support-tickets"})


def test_report_with_only_counts_renders_every_other_section_as_not_run():
    page = render_card({"counts": realistic_report()["counts"]})
    for anchor in ("flow", "pii", "duplicates", "conflicts", "lengths", "sources", "documents"):
        assert "Not run" in section(page, anchor), anchor
    assert "778 in = 727 kept + 51 rejected" in section_header(page)


def test_accounting_that_does_not_add_up_fails_loudly():
    report = realistic_report()
    report["counts"]["kept"] = 726
    page = render_card(report)
    assert "FAIL" in section_header(page)
    assert "778 in but 726 kept + 51 rejected = 777" in page


def test_a_canary_that_survived_fails():
    report = realistic_report()
    report["pii"]["canaries"] = {"configured": 2, "survived": 1}
    assert "1 of 2 planted canaries survived" in section_header(render_card(report))


def section_header(page: str) -> str:
    return page.split("</header>")[0]


# ----------------------------------------------------------------------------- in headless Chromium


@needs_chromium
def test_card_in_chromium_shows_every_section_and_the_accounting(tmp_path):
    report = realistic_report()
    page = tmp_path / "report.html"
    write_card(report, page)
    dom = dump_dom(page, tmp_path)

    headings = re.findall(r"<h2[^>]*>(.*?)</h2>", dom)
    for name in ["Flow", "Splits &amp; labels", "Rejects", "PII", "Duplicates", "Conflicts", "Lengths", "Sources"]:
        assert name in headings
    assert "Documents" in headings
    header = section_header(dom)
    assert "778 in = 727 kept + 51 rejected" in header
    assert re.search(r"Accounting</span><span[^>]*>PASS", header)
    assert re.search(r"Canaries</span><span[^>]*>PASS", header)

    # One bar per non-zero value: stages stack kept and rejected, labels stack the splits.
    flow = chart(dom, "flow")
    assert bars(flow) == len(report["stages"]) + sum(1 for s in report["stages"] if s["rejected"])
    assert "<title" in flow and 'role="img"' in flow
    assert bars(chart(dom, "rejects")) == len(report["counts"]["rejected_by_reason"])
    assert bars(chart(dom, "labels")) == sum(1 for values in SPLIT_LABELS.values() for v in values if v)
    assert len(re.findall(r'class="bar s-gold"', chart(dom, "labels"))) == len(LABELS)
    assert bars(chart(dom, "pii")) == len(report["pii"]["by_type"])
    for split, counts in CHAR_COUNTS.items():
        assert bars(chart(dom, f"input_chars-{split}")) == sum(1 for c in counts if c)

    # The rejects table pairs each reason with its count and meaning, numbers right-aligned.
    assert re.search(r'<th scope="row">json</th><td class="num">3</td>.*?the line is not a JSON object', dom)
    # Conflicts show the differing answer field highlighted, the shared one plain.
    conflicts = section(dom, "conflicts")
    assert '<mark>"category": "technical"</mark>' in conflicts and '"priority": "high"' in conflicts
    assert '<mark>"priority"' not in conflicts
    # Sources: short hashes, full digest on hover.
    assert "cdcdcdcdcdcd</code>" in dom and f'title="{"cd" * 32}"' in dom


@needs_chromium
def test_a_script_in_an_input_is_text_not_an_element(tmp_path):
    page = tmp_path / "report.html"
    write_card(realistic_report(), page)
    dom = dump_dom(page, tmp_path)
    assert "<script" not in dom.lower()  # Chromium built no script element
    assert '&lt;script&gt;alert("owned")&lt;/script&gt; my card was charged twice' in section(dom, "duplicates")


@needs_chromium
def test_missing_sections_say_not_run(tmp_path):
    report = sparse_report()
    page = tmp_path / "report.html"
    write_card(report, page)
    dom = dump_dom(page, tmp_path)

    for anchor in ("pii", "lengths", "conflicts", "documents"):
        assert "Not run" in section(dom, anchor), anchor
    assert re.search(r"Canaries</span><span[^>]*>NOT RUN", section_header(dom))
    flow = section(dom, "flow")
    for stage in ("pii", "semantic dedup"):
        assert re.search(rf'<th scope="row">{stage}</th><td colspan="3" class="not-run">not run</td>', flow)
    assert bars(chart(dom, "flow")) == len(report["stages"]) + sum(1 for s in report["stages"] if s["rejected"])
    assert re.search(
        r'<th scope="row">semantic</th><td colspan="3" class="not-run">not run', section(dom, "duplicates")
    )
    assert "778 in = 727 kept + 51 rejected" in section_header(dom)
    # Without reject_kinds in the report, the meaning of a known kind still comes from slmkit.
    assert re.search(r'<th scope="row">json</th>.*?the line is not a JSON object', section(dom, "rejects"))


@needs_chromium
def test_screenshot_is_a_real_rendering(tmp_path):
    page = tmp_path / "report.html"
    write_card(realistic_report(), page)
    png = tmp_path / "card.png"
    result = subprocess.run(
        [*_chromium_args(tmp_path), f"--screenshot={png}", "--window-size=1200,3000", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1200, 3000)
    # A blank page compresses to a few KB; text, tables and charts do not.
    assert len(data) > 100_000
