"""The retrieval index: chunks that point at their exact characters, access groups from three places,
incremental updates without duplicates, a kill mid-update that leaves the old index whole, and
search that ranks only what the caller may see."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from itertools import pairwise
from pathlib import Path

import pytest

from slmkit.errors import DataError
from slmkit.retrieval import Retriever, open_index, read_document, run_index_update
from slmkit.retrieval.chunking import chunk_document
from slmkit.retrieval.metrics import evaluate_retrieval, query_metrics, read_qrels
from tests.retrieval.conftest import write_policy_project
from tests.test_cli import run_cli

BASE = "smollm2-135m-instruct"  # never loaded: indexing needs the documents and the settings only
REPO = Path(__file__).resolve().parents[2]


def _chunks(config, doc_id: str):
    path = config.resolve_path(doc_id)
    docs = config.data.documents
    return chunk_document(read_document(config, doc_id, path), docs.chunk_chars, docs.overlap_chars)


def test_markdown_chunks_carry_their_section_path_exact_span_and_hash(tmp_path):
    config = write_policy_project(tmp_path / "p", BASE)
    chunks = _chunks(config, "docs/returns.md")
    source = (tmp_path / "p" / "docs" / "returns.md").read_text()
    assert [(c.title, c.section) for c in chunks] == [
        ("Returns policy", "Returns"),
        ("Returns policy", "Returns > Refunds"),
    ]
    for chunk in chunks:  # a citation's span names exactly the characters of the file
        assert source[chunk.start : chunk.end] == chunk.text
    assert chunks[1].text.startswith("Refunds reach your card within 5 working days")
    assert chunks[0].heading == "Returns policy > Returns"
    assert len({c.content_hash for c in chunks}) == 2


def test_long_sections_are_cut_with_overlap_within_the_limit(tmp_path):
    sentences = " ".join(f"Rule {n} says parcels of class {n} need label {n * 7}." for n in range(60))
    config = write_policy_project(
        tmp_path / "p", BASE, {"data.documents.chunk_chars": 200, "data.documents.overlap_chars": 60}
    )
    (tmp_path / "p" / "docs" / "rules.md").write_text(f"# Rules\n\n{sentences}\n\nA closing paragraph.\n")
    chunks = _chunks(config, "docs/rules.md")
    assert len(chunks) > 10 and all(len(c.text) <= 200 for c in chunks)
    for before, after in pairwise(chunks):
        assert after.start < before.end  # the next chunk repeats the end of the one before
        assert after.start >= before.start and after.text.startswith("Rule ")  # whole sentences only
    covered = "".join(c.text for c in chunks)
    for n in range(60):  # nothing is lost at a boundary
        assert f"label {n * 7}." in covered


def test_html_goes_through_trafilatura_and_pdf_through_pypdf(tmp_path):
    config = write_policy_project(tmp_path / "p", BASE)
    body = "".join(
        f"<h2>Claims {n}</h2><p>Claim number {n} is handled within ten working days by the warranty desk, "
        "who answer every request in writing.</p>"
        for n in range(4)
    )
    html = (
        "<html><head><title>Warranty</title><script>var tracker = 'pixel-secret';</script></head><body>"
        f"<nav><a href='/'>Home</a> | <a href='/shop'>Shop</a></nav><main><h1>Warranty terms</h1>{body}</main>"
        "<footer>Copyright footer text</footer></body></html>"
    )
    (tmp_path / "p" / "docs" / "warranty.html").write_text(html)
    doc = read_document(config, "docs/warranty.html", tmp_path / "p" / "docs" / "warranty.html")
    chunks = chunk_document(doc, 300, 40)
    assert doc.title == "Warranty terms"  # trafilatura prefers the page's h1 to its <title>
    assert [c.section for c in chunks][:2] == ["Warranty terms > Claims 0", "Warranty terms > Claims 1"]
    everything = " ".join(c.text for c in chunks)
    assert "within ten working days" in everything
    for boilerplate in ("pixel-secret", "Copyright footer", "<", "Home | Shop"):
        assert boilerplate not in everything
    pdf = tmp_path / "p" / "docs" / "terms.pdf"
    pdf.write_bytes(_pdf(["Warranty lasts two years.", "Batteries are covered for one year."]))
    doc = read_document(config, "docs/terms.pdf", pdf)
    chunks = chunk_document(doc, 300, 40)
    assert [(c.section, c.text) for c in chunks] == [
        ("page 1", "Warranty lasts two years."),
        ("page 2", "Batteries are covered for one year."),
    ]
    assert all(doc.text[c.start : c.end] == c.text for c in chunks)


def test_groups_come_from_front_matter_sidecars_and_path_rules(tmp_path):
    config = write_policy_project(tmp_path / "p", BASE)
    root = tmp_path / "p"
    (root / "docs" / "returns.md.meta.yaml").write_text("groups: [support]\n")
    groups = {
        doc_id: read_document(config, doc_id, root / doc_id).groups
        for doc_id in ("docs/returns.md", "docs/shipping.md", "docs/internal/staff-pricing.md",
                       "docs/internal/refund-limits.txt")
    }  # fmt: skip
    assert groups == {
        "docs/returns.md": ("support",),  # the sidecar
        "docs/shipping.md": (),  # public
        "docs/internal/staff-pricing.md": ("staff",),  # front matter
        "docs/internal/refund-limits.txt": ("finance",),  # slmkit.yaml data.documents.access
    }
    (root / "docs" / "returns.md.meta.yaml").write_text("groups: staff, finance\n")
    with pytest.raises(DataError, match=r"returns\.md\.meta\.yaml: 'groups' in the sidecar must be a list"):
        read_document(config, "docs/returns.md", root / "docs" / "returns.md")


def test_update_reindexes_changed_documents_only_removes_deleted_ones_and_never_duplicates(tmp_path, embedder):
    config = write_policy_project(tmp_path / "p", BASE)
    root = tmp_path / "p"
    first = run_index_update(config, embedder=embedder)
    assert sorted(first.added) == [
        "docs/internal/refund-limits.txt", "docs/internal/staff-pricing.md", "docs/returns.md", "docs/shipping.md",
    ]  # fmt: skip
    again = run_index_update(config, embedder=embedder)
    assert (again.added, again.changed, again.removed, again.unchanged, again.embedded) == ([], [], [], 4, 0)
    assert again.generation == first.generation  # nothing written

    text = (root / "docs" / "shipping.md").read_text().replace("3 to 5 working days", "2 to 4 working days")
    (root / "docs" / "shipping.md").write_text(text)
    (root / "docs" / "returns.md").unlink()
    changed = run_index_update(config, embedder=embedder)
    assert (changed.changed, changed.removed, changed.unchanged) == (["docs/shipping.md"], ["docs/returns.md"], 2)
    assert changed.embedded == 1 and changed.reused == 1  # only the edited section is embedded again
    with open_index(config) as store:
        rows = store.conn.execute("SELECT chunk_id, doc_id, text FROM chunks").fetchall()
        fts = store.conn.execute("SELECT count(*) FROM chunks_fts").fetchone()[0]
        hits = Retriever(store, embedder).search("standard shipping time", groups=[], k=3)
    assert len(rows) == len({r[0] for r in rows}) == fts  # no duplicate chunk, no orphaned term list
    assert not any(r[1] == "docs/returns.md" for r in rows)
    assert "2 to 4 working days" in hits[0].chunk.text
    assert not any("3 to 5 working days" in r[2] for r in rows)


def test_a_process_killed_in_the_middle_of_an_update_leaves_the_previous_index(tmp_path, embedder):
    config = write_policy_project(tmp_path / "p", BASE)
    run_index_update(config, embedder=embedder)
    with open_index(config) as store:
        before = store.conn.execute("SELECT chunk_id, text FROM chunks ORDER BY chunk_id").fetchall()
        generation = store.generation()
    shipping = tmp_path / "p" / "docs" / "shipping.md"
    shipping.write_text(shipping.read_text().replace("50 euros", "70 euros"))
    code = "from slmkit.config import load_config; from slmkit.retrieval import run_index_update; " \
        f"run_index_update(load_config({str(tmp_path / 'p')!r}))"  # fmt: skip
    env = {**os.environ, "SLMKIT_INDEX_CRASH_MID_WRITE": "1", "PYTHONPATH": str(REPO / "src")}
    killed = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL  # killed after its deletes, before its inserts and commit
    with open_index(config) as store:
        after = store.conn.execute("SELECT chunk_id, text FROM chunks ORDER BY chunk_id").fetchall()
        assert store.generation() == generation
        assert store.conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert after == before  # the shipping chunks were deleted inside the transaction, and are back
    result = run_index_update(config, embedder=embedder)  # the next update completes the change
    assert result.changed == ["docs/shipping.md"]


def test_search_ranks_only_chunks_the_caller_may_see_and_bm25_ignores_hidden_documents(tmp_path, embedder):
    config = write_policy_project(tmp_path / "p", BASE)
    run_index_update(config, embedder=embedder)
    with open_index(config) as store:
        retriever = Retriever(store, embedder)
        query = "employee discount ZEBRAQUILL refunds"
        for mode in ("bm25", "dense", "rrf", "weighted"):
            public = retriever.search(query, groups=[], k=20, mode=mode)  # type: ignore[arg-type]
            assert public and all(not h.chunk.groups for h in public)
            staff = retriever.search(query, groups=["staff"], k=20, mode=mode)  # type: ignore[arg-type]
            assert {h.chunk.doc_id for h in staff} >= {"docs/internal/staff-pricing.md"}
            assert "docs/internal/refund-limits.txt" not in {h.chunk.doc_id for h in staff}
        assert retriever.search("ZEBRAQUILL", groups=[], k=5, mode="bm25") == []
        public_scores = retriever.bm25("refunds card", groups=[])
        fts_before = _fts5_bm25(store, "refunds")
    # The side channel: add a restricted document full of the query's words. FTS5's own bm25() counts
    # its statistics over the whole table, so its scores move; the public caller's scores do not,
    # because its statistics only ever count chunks it may see.
    (tmp_path / "p" / "docs" / "internal" / "audit.md").write_text(
        "---\ngroups: [finance]\n---\n# Audit\n\n" + "Refunds to the card are audited. " * 5 + "\n"
    )
    run_index_update(config, embedder=embedder)
    with open_index(config) as store:
        after = Retriever(store, embedder).bm25("refunds card", groups=[])
        fts_after = _fts5_bm25(store, "refunds")
    assert public_scores and after == pytest.approx(public_scores)
    assert fts_after != pytest.approx(fts_before)


def _fts5_bm25(store, term: str) -> dict[int, float]:
    rows = store.conn.execute("SELECT rowid, bm25(chunks_fts) FROM chunks_fts WHERE chunks_fts MATCH ?", (term,))
    return {rowid: score for rowid, score in rows if rowid in _public_rows(store)}


def _public_rows(store) -> set[int]:
    where, params = store.visible_filter([])
    return {r[0] for r in store.conn.execute(f"SELECT id FROM chunks WHERE {where}", params)}


def test_retrieval_metrics_on_a_qrels_file(tmp_path, embedder):
    assert query_metrics(["a", "b", "c"], {"b": 1.0}, (1, 3)) == {
        "recall@1": 0.0, "recall@3": 1.0, "mrr": 0.5, "ndcg@10": pytest.approx(1 / 1.584962500721156),
    }  # fmt: skip
    config = write_policy_project(tmp_path / "p", BASE)
    run_index_update(config, embedder=embedder)
    qrels = tmp_path / "qrels.jsonl"
    qrels.write_text(
        '{"query": "how long does standard shipping take", "relevant": ["docs/shipping.md"]}\n'
        '{"query": "when will my refund arrive", "relevant": ["docs/returns.md#2"]}\n'
        '{"query": "employee discount", "relevant": ["docs/internal/staff-pricing.md"], "groups": ["staff"]}\n'
        '{"query": "next day delivery", "relevant_text": ["express delivery  arrives the next working day"]}\n'
    )
    with open_index(config) as store:
        result = evaluate_retrieval(Retriever(store, embedder), read_qrels(qrels), ks=(1, 3))
    assert set(result.metrics) == {"bm25", "dense", "rrf", "weighted"}
    assert result.metrics["rrf"]["recall@3"] == 1.0 and result.metrics["dense"]["mrr"] == 1.0
    qrels.write_text('{"query": "x", "relevant": []}\n')
    with pytest.raises(DataError, match=r"qrels\.jsonl:1: field 'relevant' must be a non-empty list"):
        read_qrels(qrels)


def _pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one line of Helvetica text per page."""
    objects = ["<< /Type /Catalog /Pages 2 0 R >>", ""]
    kids = []
    for text in pages:
        stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
        page_id, content_id = len(objects) + 1, len(objects) + 2
        kids.append(f"{page_id} 0 R")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {content_id} 0 R "
            "/Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>"
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream.decode()}\nendstream")
    objects[1] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(pages)} >>"
    out = b"%PDF-1.4\n"
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{o:010d} 00000 n \n" for o in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def test_the_index_commands_end_to_end(tmp_path, capsys):
    root = tmp_path / "p"
    write_policy_project(root, BASE)
    code, out, _ = run_cli(capsys, "index", "search", "refunds", "-p", str(root))
    assert code == 5 and out == ""  # nothing indexed yet: a stage error, not a traceback
    code, out, _ = run_cli(capsys, "index", "build", "-p", str(root))
    assert code == 0 and "4 documents" in out and "4 added" in out
    code, out, _ = run_cli(capsys, "index", "update", "-p", str(root))
    assert code == 0 and "4 unchanged; 0 chunks embedded" in out
    code, out, _ = run_cli(capsys, "index", "search", "employee discount", "-p", str(root), "-k", "9")
    assert code == 0 and "staff-pricing" not in out and "docs/returns.md#" in out
    code, out, _ = run_cli(capsys, "index", "search", "employee discount", "-p", str(root), "-g", "staff", "-k", "1")
    assert code == 0 and out.startswith("1. docs/internal/staff-pricing.md#1 [")
    (tmp_path / "qrels.jsonl").write_text('{"query": "standard shipping time", "relevant": ["docs/shipping.md"]}\n')
    code, out, _ = run_cli(capsys, "index", "eval", str(tmp_path / "qrels.jsonl"), "-p", str(root))
    assert code == 0 and "recall@1" in out and out.count("\n") == 6  # header, column names, four rankings
