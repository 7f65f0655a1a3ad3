"""The full example data: every planted defect is caught with the right reason, no row is lost."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from slmkit.data import REJECT_KINDS, open_dataset
from slmkit.registry import Registry
from tests.conftest import EXAMPLE, read_jsonl
from tests.data.factories import BASE_MODEL, build, config, write_project

PLANTED = json.loads((EXAMPLE / "data" / "planted.json").read_text())

# What a planted malformed row must be rejected as, from the words planted.json describes it with
# (first match wins; None: a blank line, skipped and counted).
KIND_BY_WORDS = [
    (("empty line",), None),
    (("UTF-8",), "encoding"),
    (("columns",), "columns"),
    (("does not parse", "not valid JSON text"), "output_json"),
    (("no 'output'", "output missing", "output cell is empty", "output cell empty"), "missing_field"),
    (("label set", "ORD-", "wrong shape", "required key"), "schema"),
    (("not text", "is a list", "is a number"), "field_type"),
    (("empty",), "empty"),
    (("JSON", "log line"), "json"),
]


def _expected_kind(defect: str) -> str | None:
    for words, kind in KIND_BY_WORDS:
        if any(word in defect for word in words):
            return kind
    raise AssertionError(f"planted.json has a defect this test does not know: {defect!r}")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = write_project(tmp_path_factory.mktemp("example") / "project", BASE_MODEL, rows=None)
    result = build(root)
    rows = {split: read_jsonl(result.path / f"{split}.jsonl") for split in ("train", "validation", "gold")}
    return root, result, rows, read_jsonl(result.path / "rejects.jsonl")


def _source(where: str) -> str:
    """planted.json's 'tickets.jsonl line 49' -> our provenance 'data/tickets.jsonl:49'."""
    name, line = re.fullmatch(r"(\S+) line (\d+)", where).groups()
    return f"data/{name}:{line}"


def test_every_planted_malformed_row_is_rejected_with_its_kind_and_line(built):
    _, result, _, rejects = built
    by_source = {r["source"]: r for r in rejects}
    for item in PLANTED["malformed"]:
        kind = _expected_kind(item["defect"])
        source = _source(item["where"])
        if kind is None:
            assert source not in by_source
            continue
        assert source in by_source, f"{item} was not rejected"
        reject = by_source[source]
        assert reject["kind"] == kind, (item, reject)
        assert reject["reason"]
        if reject["stage"] == "ingest":
            assert f"line {source.rsplit(':', 1)[1]}" in reject["reason"]
        if item["ticket_id"]:
            assert reject["id"] == item["ticket_id"], (item, reject)
        if kind == "schema" and "label set" in item["defect"]:
            assert re.match(r"output\.category: '\w+' is not one of \['billing'", reject["reason"])
    assert result.counts["blank_lines"] == sum(_expected_kind(i["defect"]) is None for i in PLANTED["malformed"])


def test_exact_duplicates_keep_the_first_and_name_it(built):
    _, _, rows, rejects = built
    kept_ids = [r["id"] for split in rows.values() for r in split]
    duplicates = {r["id"]: r for r in rejects if r["kind"] == "duplicate"}
    conflicts = {r["id"] for r in rejects if r["kind"] == "conflict"}
    contradicted = {ticket for pair in PLANTED["contradictory"] for ticket in pair}
    for first, second in PLANTED["exact_duplicates"]:
        if {first, second} & contradicted:  # a mislabelled copy exists too: none of the copies is kept
            assert first not in kept_ids and second not in kept_ids
            assert {first, second} <= conflicts
        elif first == second:  # the same ticket exported twice: one copy kept, one rejected
            assert kept_ids.count(first) == 1
            assert first in duplicates
        else:  # a copy under a new id: whichever comes first in the sources is kept
            assert (first in kept_ids) != (second in kept_ids), (first, second)
            rejected = duplicates[second if first in kept_ids else first]
            assert re.fullmatch(r"exact duplicate of data/tickets(\.jsonl|_extra\.csv):\d+", rejected["reason"])


def test_conflicting_labels_reject_every_row_of_the_input(built):
    _, _, rows, rejects = built
    kept_ids = {r["id"] for split in rows.values() for r in split}
    conflicts = {r["id"]: r for r in rejects if r["kind"] == "conflict"}
    for a, b in PLANTED["contradictory"]:
        assert a in conflicts and b in conflicts
        assert a not in kept_ids and b not in kept_ids
        # Each names the other row and the field that differs.
        assert "conflicting labels" in conflicts[a]["reason"]
        assert conflicts[b]["source"] in conflicts[a]["reason"]
        assert re.search(r"(category|priority) '\w+' here, '\w+' there", conflicts[a]["reason"])


def test_accounting_every_row_lands_exactly_once(built):
    _, result, rows, rejects = built
    c = result.counts
    lines = (EXAMPLE / "data" / "tickets.jsonl").read_bytes().splitlines()
    assert c["input"] == len(lines) - 1 + 80  # one blank JSONL line; 80 CSV records
    assert c["input"] == c["train"] + c["validation"] + c["gold"] + c["rejected"]
    assert [c["train"], c["validation"], c["gold"], c["rejected"]] == [len(rows[s]) for s in rows] + [len(rejects)]
    assert sum(c["rejected_by_reason"].values()) == c["rejected"]
    assert set(c["rejected_by_reason"]) <= set(REJECT_KINDS)
    sources = [r["source"] for split in rows.values() for r in split] + [r["source"] for r in rejects]
    assert len(sources) == len(set(sources)) == c["input"]
    # The split is the configured one, roughly, and every label is in the gold set.
    assert 0.12 < c["gold"] / c["kept"] < 0.18
    assert all(n > 0 for n in c["by_label"]["gold"].values())


def test_outputs_are_canonical_and_inputs_rendered(built):
    root, _, rows, _ = built
    order = ["category", "priority", "order_id", "product"]
    for split in rows.values():
        for row in split:
            assert list(row["output"]) == order
            assert row["label"] == row["output"]["category"]
            assert row["input"] == f"Subject: {row['fields']['subject']}\n\n{row['fields']['body']}".strip()
    # About a tenth of the answers are JSON text with shuffled keys; they come out as the same objects.
    kept = {r["id"]: r for split in rows.values() for r in split}
    text_outputs = shuffled = 0
    for line in (root / "data" / "tickets.jsonl").read_text(errors="replace").splitlines():
        try:
            raw = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(raw, dict) and isinstance(raw.get("output"), str) and raw["ticket_id"] in kept:
            parsed = json.loads(raw["output"])
            expected = {k: v.strip() if isinstance(v, str) else v for k, v in parsed.items()}
            assert kept[raw["ticket_id"]]["output"] == expected
            assert list(kept[raw["ticket_id"]]["output"]) == order
            shuffled += list(parsed) != order
            text_outputs += 1
    assert text_outputs > 20 and shuffled > 10


def test_report_manifest_and_open_dataset(built):
    root, result, rows, _ = built
    manifest = json.loads((result.path / "manifest.json").read_text())
    report = json.loads((result.path / "report.json").read_text())
    assert manifest["gold_hash"] == result.gold_hash
    assert manifest["counts"] == report["counts"] == result.counts
    assert {s["path"] for s in manifest["sources"]} == {"data/tickets.jsonl", "data/tickets_extra.csv"}
    assert all(len(s["sha256"]) == 64 for s in manifest["sources"])
    assert manifest["seed"] == 13 and manifest["slmkit_version"]
    assert "created_at" not in json.dumps(manifest)  # timestamps would break identical versions
    dataset = open_dataset(config(root), Registry(root / ".slmkit"))
    assert dataset.version == result.version
    gold = dataset.examples("gold")
    assert [g.id for g in gold] == [r["id"] for r in rows["gold"]]
    assert gold[0].output == rows["gold"][0]["output"]


def test_summary_lines_say_where_every_row_went(built):
    _, result, _, _ = built
    c = result.counts
    first = result.summary_lines()[0]
    assert f"{c['input']} rows in: {c['train']} train, {c['validation']} validation, {c['gold']} gold" in first
    assert f"{c['rejected_by_reason']['duplicate']} duplicate" in first
    assert f"{c['rejected_by_reason']['conflict']} conflict" in first
    assert any("blank line" in line for line in result.summary_lines())
    assert any(str(Path(result.path) / "rejects.jsonl") in line for line in result.summary_lines())
