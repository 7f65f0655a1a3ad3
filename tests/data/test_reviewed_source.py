"""Reviewed production items as a data source: read like any other (PII, dedup, gold leaks), with
their provenance; they join the gold set only as an explicit production slice."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slmkit.config import REVIEWED_SOURCE
from slmkit.registry import Registry
from tests.conftest import read_jsonl
from tests.data.factories import build, jsonl, make_project, ticket


def reviewed(n: int, *, stratum: str = "random", **fields: Any) -> dict[str, Any]:
    """A row as slmkit.monitor.reviewed writes it (the request's fields, the answer, provenance)."""
    row = ticket(n, **fields)
    return {
        "id": f"requests.db#chatcmpl-{n}",
        "subject": row["subject"],
        "body": row["body"],
        "output": row["output"],
        "tags": ["production", f"stratum:{stratum}"],
        "reviewer": "alice",
        "reviewed_at": "2026-12-01T10:00:00.000Z",
        "verdict": "correct",
        "answered_by": "support-tickets@1",
    }


def _write(root: Path, rows: list[dict[str, Any]]) -> None:
    (root / REVIEWED_SOURCE).write_bytes(jsonl(rows))


def test_reviewed_items_are_a_source_with_pii_dedup_and_gold_leaks_handled(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"tickets.jsonl": jsonl([ticket(n) for n in range(200)])})
    first = build(root)
    gold = read_jsonl(first.path / "gold.jsonl")
    train = read_jsonl(first.path / "train.jsonl")
    near_gold = {**reviewed(1001), **gold[0]["fields"], "output": gold[0]["output"]}
    near_gold["body"] += " Thanks"
    other_answer = {**reviewed(1003), **gold[1]["fields"], "output": {**gold[1]["output"], "priority": "urgent"}}
    _write(
        root,
        [
            reviewed(1000, body="The e-bike battery dies after 3 km, write me at jo@example.com"),  # new
            near_gold,  # a near copy of a gold row
            other_answer,  # a gold row's input, with another answer
            {
                **reviewed(1002),
                "subject": train[0]["fields"]["subject"],
                "body": train[0]["fields"]["body"],
                "output": train[0]["output"],
            },  # fmt: skip  (a copy of a training row)
        ],
    )
    second = build(root)

    rows = {r["id"]: r for split in ("train", "validation") for r in read_jsonl(second.path / f"{split}.jsonl")}
    new = rows["requests.db#chatcmpl-1000"]
    assert new["source"] == f"{REVIEWED_SOURCE}:1" and "<EMAIL_1>" in new["input"] and "jo@example" not in new["input"]
    rejects = {r["id"]: r for r in read_jsonl(second.path / "rejects.jsonl")}
    # A near copy of a gold row never trains: here the gold row is in the sources too, so the build
    # names it as the kept row of the cluster (a gold row the sources lost would make it a gold_leak).
    near = rejects["requests.db#chatcmpl-1001"]
    assert near["kind"] == "near_duplicate" and gold[0]["source"] in near["reason"]
    assert "requests.db#chatcmpl-1001" not in rows
    assert rejects["requests.db#chatcmpl-1003"]["kind"] == "gold_overlap"
    assert "requests.db#chatcmpl-1002" in rejects or not any(
        r["id"] == train[0]["id"] for r in read_jsonl(second.path / "train.jsonl")
    )
    assert second.gold_hash == first.gold_hash  # the gold set stays as locked
    assert any("reviewed production items: 4 rows read from .slmkit/reviewed.jsonl; they train" in line
               for line in second.summary_lines())  # fmt: skip
    assert second.counts["input"] == first.counts["input"] + 4


def test_the_random_share_starts_a_gold_slice_only_when_asked(tmp_path: Path) -> None:
    files = {"tickets.jsonl": jsonl([ticket(n) for n in range(200)])}
    root = make_project(tmp_path / "p", files)
    first = build(root)
    _write(root, [reviewed(1000 + n, stratum="random" if n < 4 else "low_confidence") for n in range(8)])
    plain = build(root)
    assert plain.gold_hash == first.gold_hash

    make_project(root, files, overrides={"data.reviewed.gold_extra": True})  # the same data, the setting on
    sliced = build(root)
    locked_bytes = (first.path / "gold.jsonl").read_bytes()
    gold_bytes = (sliced.path / "gold.jsonl").read_bytes()
    assert gold_bytes.startswith(locked_bytes)  # the locked rows stay byte for byte, first
    slice_rows = read_jsonl(sliced.path / "gold.jsonl")[len(read_jsonl(first.path / "gold.jsonl")) :]
    assert sorted(r["id"] for r in slice_rows) == [f"requests.db#chatcmpl-{1000 + n}" for n in range(4)]
    training = {r["id"] for split in ("train", "validation") for r in read_jsonl(sliced.path / f"{split}.jsonl")}
    assert not training & {r["id"] for r in slice_rows}
    assert any("4 of the random share added to the gold set as a production slice (data.reviewed.gold_extra)"
               in line for line in sliced.summary_lines())  # fmt: skip
    with Registry(root / ".slmkit") as registry:
        lock = registry.gold_lock("support-tickets")
        assert lock is not None and lock.gold_hash == sliced.gold_hash
        entry = next(e for e in registry.audit_log(limit=20) if e.action == "gold_unlock")
        assert "data.reviewed.gold_extra: 4 reviewed production items" in json.dumps(entry.detail)

    again = build(root)  # the slice is part of the locked set now: nothing is appended twice
    assert again.gold_hash == sliced.gold_hash


def test_a_new_gold_draw_takes_the_reviewed_random_share_whole(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", {"tickets.jsonl": jsonl([ticket(n) for n in range(200)])})
    first = build(root)
    _write(root, [reviewed(1000 + n, stratum="random" if n < 3 else "flagged") for n in range(6)])
    redrawn = build(root, new_gold=True)
    gold_ids = {r["id"] for r in read_jsonl(redrawn.path / "gold.jsonl")}
    assert {f"requests.db#chatcmpl-{1000 + n}" for n in range(3)} <= gold_ids
    assert redrawn.gold_hash != first.gold_hash
    assert any("3 of the random share added to the gold set as a production slice (--new-gold)" in line
               for line in redrawn.summary_lines())  # fmt: skip
