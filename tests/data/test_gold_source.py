"""Bring your own test set: a source with role: gold is the gold set, and its copies leave training."""

from __future__ import annotations

from pathlib import Path

import yaml

from slmkit.data import open_dataset
from slmkit.registry import Registry
from tests.conftest import read_jsonl
from tests.data.factories import build, config, jsonl, make_project, ticket


def _with_gold_source(root: Path, train: list, gold: list) -> Path:
    make_project(root, {"train.jsonl": jsonl(train), "benchmark.jsonl": jsonl(gold)})
    spec = yaml.safe_load((root / "slmkit.yaml").read_text())
    spec["data"]["sources"][1]["role"] = "gold"
    (root / "slmkit.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root


def test_a_gold_source_is_the_gold_set_and_its_copies_are_kept_out_of_training(tmp_path):
    train = [ticket(n) for n in range(60)]
    gold = [
        ticket(
            n, body=f"Order ORD-{100000 + n} arrived with a cracked screen and the box was open, case {n}, please help"
        )
        for n in range(1000, 1020)
    ]
    train.append({**gold[0], "ticket_id": "T-copy"})  # an exact copy of a gold row: a leak
    train.append({**gold[1], "ticket_id": "T-relabel", "output": {**gold[1]["output"], "category": "account"}})
    near = dict(gold[2], ticket_id="T-near")
    near["body"] = gold[2]["body"] + " soon"
    train.append(near)  # a near copy
    root = _with_gold_source(tmp_path / "p", train, gold)
    result = build(root)

    written = read_jsonl(result.path / "gold.jsonl")
    assert [r["id"] for r in written] == [g["ticket_id"] for g in gold]  # the file as it is, every row
    assert all(r["source"].startswith("data/benchmark.jsonl:") for r in written)
    training = {r["id"] for split in ("train", "validation") for r in read_jsonl(result.path / f"{split}.jsonl")}
    assert not training & {g["ticket_id"] for g in gold}
    assert "T-copy" not in training and "T-relabel" not in training
    rejects = {r["id"]: r for r in read_jsonl(result.path / "rejects.jsonl")}
    assert rejects["T-copy"]["kind"] == "gold_leak" and "exact copy of gold row" in rejects["T-copy"]["reason"]
    assert rejects["T-relabel"]["kind"] == "gold_overlap" and "the gold answer stands" in rejects["T-relabel"]["reason"]
    # No gold row was drawn from the training source: all 60 plain rows train or validate.
    assert len(training) == 60
    summary = "\n".join(result.summary_lines())
    assert "from data/benchmark.jsonl (role: gold) and locked" in summary
    assert rejects["T-near"]["kind"] == "gold_leak" and "near duplicate" in rejects["T-near"]["reason"]
    assert "3 rows kept out of training as copies of gold rows (2 gold_leak, 1 gold_overlap)" in summary

    # Locked: a rebuild keeps it byte for byte; a row added to the gold file later never trains.
    (root / "data" / "benchmark.jsonl").write_bytes(jsonl([*gold, ticket(2000)]))
    again = build(root)
    assert again.gold_reused and (again.path / "gold.jsonl").read_bytes() == (result.path / "gold.jsonl").read_bytes()
    rejects = {r["id"]: r for r in read_jsonl(again.path / "rejects.jsonl")}
    assert rejects["T-2000"]["kind"] == "gold_unlocked" and "--new-gold" in rejects["T-2000"]["reason"]
    # --new-gold locks the file as it is now.
    fresh = build(root, new_gold=True)
    assert len(read_jsonl(fresh.path / "gold.jsonl")) == 21
    dataset = open_dataset(config(root), Registry(root / ".slmkit"), fresh.version)
    assert len(dataset.examples("gold")) == 21
