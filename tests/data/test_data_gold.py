"""Versions are reproducible, and the gold set stays locked until `--new-gold` replaces it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from slmkit.data import open_dataset, verify_gold_file
from slmkit.data.normalize import dedup_key
from slmkit.errors import GoldSetChanged, StageError
from slmkit.registry import Registry
from tests.conftest import EXAMPLE, REPO, read_jsonl
from tests.data.factories import BASE_MODEL, build, config, write_project


def _project(root: Path, rows: int | None = None, **overrides) -> Path:
    return write_project(root, BASE_MODEL, rows=rows, overrides=overrides)


def _keys(path: Path, split: str) -> set[str]:
    return {dedup_key(r["input"]) for r in read_jsonl(path / f"{split}.jsonl")}


def test_same_data_and_seed_give_the_same_version(tmp_path):
    first = build(_project(tmp_path / "a"))
    elsewhere = build(_project(tmp_path / "b"))  # another directory, another registry
    again = build(tmp_path / "a")  # same registry: now on the locked gold set
    assert first.version == elsewhere.version == again.version
    assert first.digest == elsewhere.digest
    assert (first.gold_reused, again.gold_reused) == (False, True)
    assert first.version == f"ds-{first.digest[:12]}"


def test_the_version_does_not_depend_on_hash_randomization(tmp_path):
    root = _project(tmp_path / "p", rows=200)
    script = "import sys; from tests.data.factories import build; print(build(sys.argv[1]).version)"
    versions = set()
    for seed in ("1", "2"):
        shutil.rmtree(root / ".slmkit", ignore_errors=True)
        env = {**os.environ, "PYTHONHASHSEED": seed}
        done = subprocess.run(
            [sys.executable, "-c", script, str(root)], cwd=REPO, env=env, capture_output=True, text=True, check=True
        )
        versions.add(done.stdout.strip())
    assert len(versions) == 1


def test_a_different_seed_changes_the_split_but_not_the_locked_gold(tmp_path):
    root = _project(tmp_path / "p")
    first = build(root)
    _project(root, **{"data.split.seed": 99})
    second = build(root)
    assert second.gold_reused and second.gold_hash == first.gold_hash
    assert (second.path / "gold.jsonl").read_bytes() == (first.path / "gold.jsonl").read_bytes()
    assert _keys(second.path, "validation") != _keys(first.path, "validation")
    assert second.version != first.version
    # Without a lock the seed draws another gold set: it is the lock that keeps it.
    fresh = build(_project(tmp_path / "fresh", **{"data.split.seed": 99}))
    assert fresh.gold_hash != first.gold_hash


def test_rebuild_with_more_rows_keeps_gold_byte_identical_and_out_of_training(tmp_path):
    root = _project(tmp_path / "p", rows=300)
    first = build(root)
    # Two gold tickets that have no planted copies (a copy would make the edit a plain conflict).
    planted = json.loads((EXAMPLE / "data" / "planted.json").read_text())
    copied = {t for kind in ("exact_duplicates", "contradictory") for pair in planted[kind] for t in pair}
    gold = [
        r
        for r in read_jsonl(first.path / "gold.jsonl")
        if r["source"].startswith("data/tickets.jsonl:") and r["id"] not in copied
    ]
    _project(root, rows=None)
    # Someone relabels a gold ticket in the sources, and appends a conflicting copy of another.
    path = root / "data" / "tickets.jsonl"
    lines = path.read_bytes().splitlines(keepends=True)
    edited, copied = gold[0], gold[1]
    line = int(edited["source"].rsplit(":", 1)[1])
    flip = {"urgent": "low"}.get(edited["output"]["priority"], "urgent")
    relabelled = {**edited["fields"], "ticket_id": edited["id"], "output": {**edited["output"], "priority": flip}}
    lines[line - 1] = json.dumps(relabelled).encode() + b"\n"
    conflicting = {**copied["fields"], "ticket_id": "T-COPY", "output": {**copied["output"], "priority": flip}}
    if copied["output"]["priority"] == flip:
        conflicting["output"]["priority"] = "normal" if flip != "normal" else "high"
    path.write_bytes(b"".join(lines) + json.dumps(conflicting).encode() + b"\n")

    second = build(root)
    assert second.gold_reused
    assert (second.path / "gold.jsonl").read_bytes() == (first.path / "gold.jsonl").read_bytes()
    assert second.counts["input"] > first.counts["input"]
    gold_keys = _keys(second.path, "gold")
    assert not gold_keys & (_keys(second.path, "train") | _keys(second.path, "validation"))
    rejects = read_jsonl(second.path / "rejects.jsonl")
    # The locked answer stands: the relabelled row and the disagreeing copy are both rejected
    # against the gold set; the unchanged original of the copied ticket still counts as gold.
    overlap = [r for r in rejects if r["kind"] == "gold_overlap"]
    assert sorted(r["id"] for r in overlap) == sorted([edited["id"], "T-COPY"])
    for reject in overlap:
        assert reject["reason"].startswith("already in the locked gold set")
        assert f"priority '{reject['raw']['output']['priority']}' here" in reject["reason"]
    c = second.counts
    assert c["gold_from_sources"] == c["gold"] - 1  # the relabelled ticket is still gold, from the lock
    assert c["input"] == c["train"] + c["validation"] + c["gold_from_sources"] + c["rejected"]


def test_gold_rows_removed_from_the_sources_stay_in_the_gold_set(tmp_path):
    root = _project(tmp_path / "p", rows=400)
    first = build(root)
    _project(root, rows=150)
    second = build(root)
    c = second.counts
    assert (second.path / "gold.jsonl").read_bytes() == (first.path / "gold.jsonl").read_bytes()
    assert c["gold"] == first.counts["gold"] > c["gold_from_sources"]
    assert c["input"] == c["train"] + c["validation"] + c["gold_from_sources"] + c["rejected"]
    assert any("no longer in the sources" in line for line in second.summary_lines())


def test_new_gold_draws_and_locks_a_different_set(tmp_path):
    root = _project(tmp_path / "p")
    first = build(root)
    renewed = build(root, new_gold=True)
    registry = Registry(root / ".slmkit")
    assert not renewed.gold_reused and renewed.gold_hash != first.gold_hash
    lock = registry.gold_lock("support-tickets")
    assert (lock.gold_hash, lock.dataset_version) == (renewed.gold_hash, renewed.version)
    assert [e.action for e in registry.audit_log("support-tickets")].count("gold_unlock") == 1
    assert build(root).gold_hash == renewed.gold_hash  # the new set is the locked one now
    with pytest.raises(GoldSetChanged, match="run `slmkit data build`"):
        open_dataset(config(root), registry, first.version)  # built on the replaced gold set


def test_a_tampered_gold_file_is_refused(tmp_path):
    root = _project(tmp_path / "p", rows=200)
    result = build(root)
    gold = result.path / "gold.jsonl"
    lines = gold.read_text().splitlines(keepends=True)
    gold.chmod(0o644)
    gold.write_text("".join(lines[1:]))  # someone drops a hard gold row
    registry = Registry(root / ".slmkit")
    with pytest.raises(GoldSetChanged) as err:
        open_dataset(config(root), registry)
    message = str(err.value)
    assert result.gold_hash[:12] in message
    assert "slmkit data build --new-gold" in message and "no longer comparable" in message
    changed = rf"gold\.jsonl was changed after it was locked: .*the locked gold set's is {result.gold_hash[:12]}"
    with pytest.raises(GoldSetChanged, match=changed):
        verify_gold_file(gold, result.gold_hash)
    with pytest.raises(GoldSetChanged, match=changed):
        build(root)  # a rebuild will not copy an altered gold set either
    assert not build(root, new_gold=True).gold_reused


def test_missing_locked_gold_files_ask_for_new_gold(tmp_path):
    root = _project(tmp_path / "p", rows=200)
    result = build(root)
    shutil.rmtree(result.path)
    with pytest.raises(StageError, match="missing from the store") as err:
        build(root)
    assert "--new-gold" in str(err.value)
    assert build(root, new_gold=True).version
