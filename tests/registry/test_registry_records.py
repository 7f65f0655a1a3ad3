"""Datasets, the gold lock, training runs, eval reports and `Registry.verify`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slmkit.errors import RegistryError, SlmkitError
from slmkit.registry import Registry


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(tmp_path / ".slmkit")
    yield reg
    reg.close()


def _dataset(registry: Registry, root: Path, task: str = "tickets", text: str = "a") -> str:
    src = root / f"ds-{text}"
    src.mkdir()
    (src / "train.jsonl").write_text(f'{{"text": "{text}"}}\n')
    (src / "gold.jsonl").write_text('{"text": "gold"}\n')
    digest = registry.store.put_dir(src)
    registry.record_dataset(f"ds-{digest[:12]}", task, digest, "g" * 64, {"train": 1, "gold": 1}, {"seed": 0})
    return f"ds-{digest[:12]}"


def test_registry_creates_its_home(tmp_path: Path) -> None:
    home = tmp_path / "project" / ".slmkit"
    with Registry(home) as reg:
        assert (home / "registry.db").exists()
        assert reg.store.root == home / "objects"


def test_latest_dataset_per_task_and_a_clear_error_before_any_build(registry: Registry, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"no dataset built yet for task tickets; run `slmkit data build`"):
        registry.get_dataset(task="tickets")

    first = _dataset(registry, tmp_path, text="a")
    second = _dataset(registry, tmp_path, text="b")
    _dataset(registry, tmp_path, task="other", text="c")

    latest = registry.get_dataset(task="tickets")
    assert latest.version == second and latest.counts == {"gold": 1, "train": 1}
    assert latest.created_at.endswith("Z")
    assert registry.get_dataset(first).version == first
    assert [d.version for d in registry.list_datasets("tickets")] == [first, second]
    with pytest.raises(RegistryError, match="no dataset version 'ds-nope'"):
        registry.get_dataset("ds-nope")


def test_recording_a_dataset_twice_keeps_it_but_a_clash_is_refused(registry: Registry, tmp_path: Path) -> None:
    version = _dataset(registry, tmp_path)
    record = registry.get_dataset(version)
    again = registry.record_dataset(version, "tickets", record.digest, record.gold_hash, {}, {})
    # Same record (counts and meta from the first build); only the build order moves.
    assert (again.digest, again.counts, again.meta, again.created_at) == (
        record.digest,
        record.counts,
        record.meta,
        record.created_at,
    )
    assert again.build_seq is not None and record.build_seq is not None and again.build_seq > record.build_seq
    with pytest.raises(RegistryError, match="already recorded with different content"):
        registry.record_dataset(version, "tickets", "f" * 64, record.gold_hash, {}, {})


def test_gold_lock_holds_until_unlocked(registry: Registry) -> None:
    assert registry.gold_lock("tickets") is None
    lock = registry.lock_gold("tickets", "a" * 64, "ds-1")
    assert (lock.gold_hash, lock.dataset_version) == ("a" * 64, "ds-1")
    assert registry.lock_gold("tickets", "a" * 64, "ds-2").dataset_version == "ds-1"  # same gold: unchanged
    with pytest.raises(RegistryError, match="already has a locked gold set") as err:
        registry.lock_gold("tickets", "b" * 64, "ds-2")
    assert "--new-gold" in str(err.value)

    registry.unlock_gold("tickets", reason="new labels")
    assert registry.gold_lock("tickets") is None
    assert registry.lock_gold("tickets", "b" * 64, "ds-2").gold_hash == "b" * 64
    unlock = next(e for e in registry.audit_log("tickets") if e.action == "gold_unlock")
    assert unlock.detail == {"dataset_version": "ds-1", "gold_hash": "a" * 64, "reason": "new labels"}


def test_runs_only_completed_ones_are_usable(registry: Registry) -> None:
    base = {"spec": "smollm2-135m-instruct", "sha256": "b" * 64}
    with pytest.raises(RegistryError, match="no completed training run for task tickets"):
        registry.get_run(task="tickets")

    registry.start_run("r1", "tickets", "ds-1", base, {"lr": 1e-4})
    registry.finish_run("r1", "a" * 64, {"eval_loss": 0.5})
    registry.start_run("r2", "tickets", "ds-1", base, {"lr": 2e-4})
    registry.fail_run("r2", "CUDA out of memory")
    registry.start_run("r3", "tickets", "ds-1", base, {})

    latest = registry.get_run(task="tickets")
    assert (latest.run_id, latest.adapter_digest, latest.metrics) == ("r1", "a" * 64, {"eval_loss": 0.5})
    assert latest.base_model == base and latest.finished_at is not None
    with pytest.raises(RegistryError, match="run r2 is failed, not completed: CUDA out of memory"):
        registry.get_run("r2")
    with pytest.raises(RegistryError, match="no training run 'r9'; recent runs: r3, r2, r1"):
        registry.get_run("r9")
    assert [(r.run_id, r.status) for r in registry.list_runs("tickets")] == [
        ("r1", "completed"),
        ("r2", "failed"),
        ("r3", "running"),
    ]
    with pytest.raises(RegistryError, match="already exists"):
        registry.start_run("r1", "tickets", "ds-1", base, {})
    with pytest.raises(RegistryError, match="no training run 'nope' to finish"):
        registry.finish_run("nope", "a" * 64, {})


def test_run_config_keeps_its_key_order(registry: Registry) -> None:
    # Serving re-renders the trained prompt from this config; a schema's property order is
    # the order the model writes its answer in, so it must come back as it went in.
    config: dict[str, Any] = {"task": {"output_schema": {"properties": {"priority": {}, "category": {}, "action": {}}}}}
    registry.start_run("r1", "tickets", "ds-1", {}, config)
    registry.finish_run("r1", "a" * 64, {})
    properties = registry.get_run("r1").config["task"]["output_schema"]["properties"]
    assert list(properties) == ["priority", "category", "action"]


def test_latest_eval_of_a_run(registry: Registry) -> None:
    assert registry.latest_eval("r1") is None
    registry.record_eval("tickets", "r1", "1" * 64, "g" * 64, False, {"gates": [{"gate": "f1", "passed": False}]})
    second = registry.record_eval("tickets", "r1", "2" * 64, "g" * 64, True, {"gates": []})
    registry.record_eval("tickets", "r2", "3" * 64, "g" * 64, False, {})
    latest = registry.latest_eval("r1")
    assert latest == second and latest is not None and latest.passed is True and latest.digest == "2" * 64


def test_verify_names_the_record_whose_artifact_is_gone_or_altered(registry: Registry, tmp_path: Path) -> None:
    version = _dataset(registry, tmp_path)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_model.safetensors").write_bytes(b"\x01" * 100)
    adapter_digest = registry.store.put_dir(adapter)
    registry.start_run("r1", "tickets", version, {}, {})
    registry.finish_run("r1", adapter_digest, {})
    assert registry.verify() == []

    (registry.store.path(adapter_digest) / "adapter_model.safetensors").write_bytes(b"\x02" * 100)
    dataset_dir = registry.store.path(registry.get_dataset(version).digest)
    (dataset_dir / "gold.jsonl").unlink()

    problems = registry.verify()
    assert len(problems) == 2
    assert any("adapter of run r1" in p and "altered" in p for p in problems)
    assert any(f"dataset {version}" in p and "altered" in p for p in problems)


def test_registry_errors_are_user_facing(registry: Registry) -> None:
    with pytest.raises(SlmkitError) as err:
        registry.get_release("tickets", 1)
    assert err.value.exit_code == 7


def test_rebuilding_an_older_version_makes_it_the_latest_again(registry: Registry, tmp_path: Path) -> None:
    first = _dataset(registry, tmp_path, text="a")
    second = _dataset(registry, tmp_path, text="b")
    assert registry.get_dataset(task="tickets").version == second
    digest = registry.get_dataset(first).digest
    registry.record_dataset(first, "tickets", digest, "g" * 64, {"train": 1, "gold": 1}, {"seed": 0})
    assert registry.get_dataset(task="tickets").version == first


def test_new_gold_replaces_the_lock_in_one_step(registry: Registry) -> None:
    registry.lock_gold("tickets", "a" * 64, "ds-1")
    with pytest.raises(RegistryError, match="already has a locked gold set"):
        registry.lock_gold("tickets", "b" * 64, "ds-2")
    lock = registry.lock_gold("tickets", "b" * 64, "ds-2", replace=True, reason="--new-gold")
    assert (lock.gold_hash, lock.dataset_version) == ("b" * 64, "ds-2")
    unlock = next(e for e in registry.audit_log("tickets") if e.action == "gold_unlock")
    assert unlock.detail["replaced_by"] == "b" * 64 and unlock.detail["gold_hash"] == "a" * 64
