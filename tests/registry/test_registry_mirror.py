"""The MLflow mirror: releases become model versions, aliases follow, a second pass adds nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from slmkit.registry import Registry
from slmkit.registry.mirror import mirror_to_mlflow

pytest.importorskip("mlflow", reason="the MLflow mirror is tested where the dev extras installed mlflow-skinny")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(tmp_path / ".slmkit")
    yield reg
    reg.close()


def _stored_release(registry: Registry, tmp_path: Path, n: int, exact: float, note: str) -> None:
    adapter = tmp_path / f"adapter-{n}"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8, "n": n}))
    (adapter / "adapter_model.safetensors").write_bytes(bytes([n]) * 64)
    report = tmp_path / f"report-{n}.json"
    report.write_text(
        json.dumps({"metrics": {"adapter": {"exact_match": {"value": exact}, "label_macro_f1": {"value": None}}}})
    )
    registry.create_release(
        name="tickets",
        run_id=f"run-{n}",
        adapter_digest=registry.store.put_dir(adapter),
        base_model={"spec": "smollm2-135m-instruct", "model_id": "SmolLM2-135M-Instruct", "sha256": "b" * 64},
        dataset_version=f"ds-{n}",
        gold_hash="g" * 64,
        eval_report_digest=registry.store.put_file(report),
        config={"train": {"method": "lora"}},
        note=note,
    )


def test_releases_and_aliases_appear_in_mlflow_and_a_second_pass_adds_nothing(
    registry: Registry, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _stored_release(registry, tmp_path, 1, 0.5, "first")
    _stored_release(registry, tmp_path, 2, 0.75, "better recall")
    registry.set_alias("tickets", "staging", 2)
    registry.rollback("tickets", reason="v2 misroutes billing")  # production: 2 -> 1

    first = mirror_to_mlflow(registry, "tickets", uri, log=lambda _: None)
    assert first.created == [1, 2]
    assert first.aliases == {"production": first.versions[1], "staging": first.versions[2]}

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    production = client.get_model_version_by_alias("tickets", "production")
    assert production.tags["slmkit.release"] == "tickets@1" and production.description == "first"
    staging = client.get_model_version_by_alias("tickets", "staging")
    assert staging.tags["slmkit.adapter_sha256"] == registry.get_release("tickets", 2).adapter_digest
    assert staging.tags["slmkit.dataset_version"] == "ds-2"
    run = client.get_run(staging.run_id)
    assert run.data.metrics == {"exact_match": 0.75}, "a metric that was not computed is not sent as 0 or NaN"
    fetched = Path(client.download_artifacts(staging.run_id, "adapter", str(tmp_path / "fetched")))
    assert (fetched / "adapter_model.safetensors").read_bytes() == bytes([2]) * 64
    # The artifacts sit beside the database, not in ./mlruns of the directory the mirror ran in.
    stored = list((tmp_path / "mlflow-artifacts").rglob("adapter_model.safetensors"))
    assert len(stored) == 2 and not (Path.cwd() / "mlruns").exists()

    # A release and an alias move later: only the new version is created, the alias follows.
    _stored_release(registry, tmp_path, 3, 0.8, "third")
    registry.conn.execute("BEGIN IMMEDIATE")
    registry.conn.execute("DELETE FROM aliases WHERE alias = 'staging'")
    registry.conn.execute("COMMIT")
    second = mirror_to_mlflow(registry, "tickets", uri, log=lambda _: None)
    assert second.created == [3]
    assert second.versions[1] == first.versions[1] and second.versions[2] == first.versions[2]
    assert second.removed_aliases == ["staging"]
    assert client.get_model_version_by_alias("tickets", "production").tags["slmkit.release"] == "tickets@3"
    assert set(client.get_registered_model("tickets").aliases) == {"production"}
    assert len(client.search_model_versions("name = 'tickets'")) == 3


def test_nothing_to_mirror_is_an_error_that_says_so(registry: Registry, tmp_path: Path) -> None:
    from slmkit.errors import RegistryError

    with pytest.raises(RegistryError, match="no release of tickets"):
        mirror_to_mlflow(registry, "tickets", f"sqlite:///{tmp_path / 'm.db'}")
