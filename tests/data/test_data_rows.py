"""Normalization, dedup and the split, as a user sees them in the built files."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from slmkit.data.normalize import dedup_key, normalize_text
from slmkit.data.report import check_accounting
from slmkit.data.split import split_rows
from tests.conftest import read_jsonl
from tests.data.factories import build, jsonl, make_project, ticket


def _kept(result) -> dict[str, dict]:
    return {r["id"]: r for s in ("train", "validation", "gold") for r in read_jsonl(result.path / f"{s}.jsonl")}


def test_normalize_text():
    assert normalize_text("  Cafe\u0301\r\nline two  \t here \r\n\r\n\r\n\r\nend \x00 ") == "Café\nline two here\n\nend"
    assert normalize_text("a\u00a0\u00a0b\tc") == "a b c"
    assert dedup_key("Subject: Hi\n\nMy  ORDER") == dedup_key("subject: hi my order")
    assert dedup_key("my order") != dedup_key("my orders")


def test_json_text_outputs_become_the_same_canonical_object(tmp_path):
    as_object = ticket(1, category="billing", product="PulseBuds Pro")
    as_text = ticket(2, category="billing", product="PulseBuds Pro")
    as_text["output"] = (
        '{ "product" : " PulseBuds Pro ",  "order_id":"ORD-100002","priority":"normal", "category":"billing"}'
    )
    # The same ticket again, its answer as JSON text and its body re-spaced: a duplicate, not a conflict.
    again = {**as_object, "ticket_id": "T-1b", "body": "  question NUMBER 1 about\torder  ORD-100001. "}
    again["output"] = json.dumps({k: as_object["output"][k] for k in reversed(list(as_object["output"]))})
    rows = [as_object, as_text, again, *[ticket(n) for n in range(3, 14)]]
    result = build(make_project(tmp_path / "p", {"t.jsonl": jsonl(rows)}))
    kept = _kept(result)
    assert list(kept["T-2"]["output"].items()) == [
        ("category", "billing"),
        ("priority", "normal"),
        ("order_id", "ORD-100002"),
        ("product", "PulseBuds Pro"),
    ]
    assert list(kept["T-1"]["output"]) == list(kept["T-2"]["output"])
    reject = {r["id"]: r for r in read_jsonl(result.path / "rejects.jsonl")}["T-1b"]
    assert (reject["kind"], reject["reason"]) == ("duplicate", "exact duplicate of data/t.jsonl:1")


def test_an_input_with_two_answers_is_rejected_everywhere(tmp_path):
    body = "My parcel never arrived."
    rows = [
        ticket(1, body=body, category="shipping", order_id=None),
        ticket(2, body=body, category="shipping", order_id=None),
        ticket(3, body=body.upper(), category="returns", order_id=None),
        *[ticket(n) for n in range(4, 15)],
    ]
    for row in rows[:3]:
        row["subject"] = "Where is it"
    result = build(make_project(tmp_path / "p", {"t.jsonl": jsonl(rows)}))
    rejects = {r["id"]: r for r in read_jsonl(result.path / "rejects.jsonl")}
    assert [rejects[f"T-{n}"]["kind"] for n in (1, 2, 3)] == ["conflict"] * 3
    assert "data/t.jsonl:3 (category 'shipping' here, 'returns' there)" in rejects["T-1"]["reason"]
    assert "data/t.jsonl:2 (same answer)" in rejects["T-1"]["reason"]
    assert not {"T-1", "T-2", "T-3"} & set(_kept(result))
    assert result.counts["rejected_by_reason"] == {"conflict": 3}


@dataclass(frozen=True)
class _Row:
    key: str
    label: str


def _rows(sizes: dict[str, int]) -> list[_Row]:
    return [_Row(dedup_key(f"{label} {i}"), label) for label, n in sizes.items() for i in range(n)]


def _keys(rows, indices) -> set[str]:
    return {rows[i].key for i in indices}


def test_split_is_stratified_and_every_label_with_two_rows_reaches_gold():
    rows = _rows({"billing": 200, "shipping": 40, "rare": 2, "single": 1})
    split = split_rows(rows, validation=0.1, gold=0.15, seed=13, stratify=True)
    gold_labels = [rows[i].label for i in split.gold]
    assert gold_labels.count("billing") == 30 and gold_labels.count("shipping") == 6
    assert gold_labels.count("rare") == 1 and "single" not in gold_labels
    assert [rows[i].label for i in split.validation].count("billing") == 20
    assert sorted(split.train + split.validation + split.gold) == list(range(len(rows)))
    # Every label keeps a training row.
    assert {rows[i].label for i in split.train} == {"billing", "shipping", "rare", "single"}


def test_split_depends_on_the_rows_and_seed_not_their_order():
    rows = _rows({"a": 50, "b": 30})
    flipped = list(reversed(rows))
    one = split_rows(rows, validation=0.1, gold=0.2, seed=7, stratify=True)
    two = split_rows(flipped, validation=0.1, gold=0.2, seed=7, stratify=True)
    assert _keys(rows, one.gold) == _keys(flipped, two.gold)
    assert _keys(rows, one.validation) == _keys(flipped, two.validation)
    other = split_rows(rows, validation=0.1, gold=0.2, seed=8, stratify=True)
    assert _keys(rows, other.gold) != _keys(rows, one.gold)


def test_locked_gold_rows_stay_gold_and_a_salt_draws_another_set():
    rows = _rows({"a": 50, "b": 30})
    first = split_rows(rows, validation=0.1, gold=0.2, seed=7, stratify=True)
    locked = split_rows(rows, validation=0.1, gold=0.2, seed=7, stratify=True, locked_gold=set(first.gold))
    assert locked == first  # same rows and seed: the same split, lock or not
    salted = split_rows(rows, validation=0.1, gold=0.2, seed=7, stratify=True, gold_salt="previous")
    assert _keys(rows, salted.gold) != _keys(rows, first.gold)
    assert len(salted.gold) == len(first.gold)


def test_a_row_lost_by_a_bug_stops_the_build():
    counts = {"input": 10, "train": 6, "validation": 1, "gold_from_sources": 2, "rejected": 0}
    with pytest.raises(RuntimeError, match="slmkit bug: 10 input rows but 9 placed"):
        check_accounting(counts)
    check_accounting({**counts, "rejected": 1})
