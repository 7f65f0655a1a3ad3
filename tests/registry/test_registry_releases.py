"""Releases: numbered versions, aliases, rollback along the parent chain, and model references."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from slmkit.errors import RegistryError
from slmkit.registry import Registry, Release


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = Registry(tmp_path / ".slmkit")
    yield reg
    reg.close()


def release(registry: Registry, name: str = "tickets", **overrides: Any) -> Release:
    fields: dict[str, Any] = {
        "name": name,
        "run_id": "run-1",
        "adapter_digest": "a" * 64,
        "base_model": {"spec": "smollm2-135m-instruct"},
        "dataset_version": "ds-1",
        "gold_hash": "g" * 64,
        "eval_report_digest": "e" * 64,
        "config": {"task": {"name": name}},
    }
    return registry.create_release(**{**fields, **overrides})


def test_versions_increment_and_the_alias_follows_with_its_parent(registry: Registry) -> None:
    v1 = release(registry, note="first")
    v2 = release(registry, run_id="run-2")
    v3 = release(registry, run_id="run-3")

    assert [(r.version, r.parent_version) for r in (v1, v2, v3)] == [(1, None), (2, 1), (3, 2)]
    assert registry.aliases("tickets") == {"production": 3}
    assert [(r.version, r.aliases) for r in registry.list_releases("tickets")] == [
        (1, []),
        (2, []),
        (3, ["production"]),
    ]
    assert v1.note == "first" and v3.run_id == "run-3" and v3.ref == "tickets@3"
    assert v1.created_at.endswith("Z") and "@" in v1.created_by
    other = release(registry, name="invoices")
    assert other.version == 1, "versions count per release name"


def test_a_release_without_an_alias_moves_nothing(registry: Registry) -> None:
    release(registry)
    staged = release(registry, alias=None)
    assert staged.parent_version is None and staged.aliases == []
    assert registry.aliases("tickets") == {"production": 1}


def test_release_is_audited_with_its_actor(registry: Registry) -> None:
    made = release(registry, actor="alice@ci", note="better recall")
    assert made.created_by == "alice@ci"
    entries = registry.audit_log("tickets")
    assert [(e.action, e.actor) for e in entries] == [("alias", "alice@ci"), ("release", "alice@ci")]
    assert entries[0].detail == {"alias": "production", "from": None, "to": 1, "reason": "release of version 1"}
    assert entries[1].detail["note"] == "better recall" and entries[1].ts.endswith("Z")


def test_rollback_walks_v3_v2_v1_then_says_there_is_nothing_left(registry: Registry) -> None:
    for _ in range(3):
        release(registry)

    assert registry.rollback("tickets", reason="bad answers") == (3, 2)
    assert registry.resolve("tickets").version == 2
    assert registry.rollback("tickets") == (2, 1)
    with pytest.raises(RegistryError, match=r"nothing to roll back to: tickets@1 has no earlier release"):
        registry.rollback("tickets")
    assert registry.aliases("tickets") == {"production": 1}, "a refused rollback leaves the alias where it was"

    rollbacks = [e.detail for e in registry.audit_log("tickets") if e.action == "rollback"]
    assert rollbacks == [
        {"alias": "production", "from": 2, "to": 1, "reason": ""},
        {"alias": "production", "from": 3, "to": 2, "reason": "bad answers"},
    ]


def test_a_release_after_a_rollback_rolls_back_to_what_was_serving(registry: Registry) -> None:
    for _ in range(3):
        release(registry)
    registry.rollback("tickets")  # production: 3 -> 2
    fixed = release(registry)
    assert (fixed.version, fixed.parent_version) == (4, 2)
    assert registry.rollback("tickets") == (4, 2), "v3 was rolled back; it is not where v4 came from"


def test_rollback_to_a_given_version_and_its_errors(registry: Registry) -> None:
    for _ in range(3):
        release(registry)
    assert registry.rollback("tickets", to=1) == (3, 1)
    with pytest.raises(RegistryError, match="tickets has no version 7; versions: 1, 2, 3"):
        registry.rollback("tickets", to=7)
    with pytest.raises(RegistryError, match="already points at version 1"):
        registry.rollback("tickets", to=1)
    with pytest.raises(RegistryError, match="nothing to roll back to: tickets@staging is not set; versions: 1, 2, 3"):
        registry.rollback("tickets", alias="staging")
    with pytest.raises(RegistryError, match="no release named 'invoices'; known: tickets"):
        registry.rollback("invoices")


def test_resolve_every_reference_form(registry: Registry) -> None:
    for _ in range(3):
        release(registry)
    registry.set_alias("tickets", "staging", 2, reason="canary")

    assert registry.resolve("tickets").version == 3
    assert registry.resolve("tickets", default_alias="staging").version == 2
    assert registry.resolve("tickets@1").version == 1
    assert registry.resolve("tickets@v1").version == 1
    assert registry.resolve("tickets@staging").version == 2
    assert registry.resolve(" tickets@production ").version == 3
    assert registry.get_release("tickets", 2).aliases == ["staging"]


def test_resolve_errors_say_what_exists(registry: Registry) -> None:
    release(registry, name="support-tickets")
    release(registry, name="invoices")

    with pytest.raises(RegistryError) as err:
        registry.resolve("tickets")
    assert str(err.value) == (
        "no release named 'tickets'; known: invoices, support-tickets. Run `slmkit releases` to list them."
    )
    with pytest.raises(RegistryError, match="support-tickets has no version 4; versions: 1"):
        registry.resolve("support-tickets@v4")
    with pytest.raises(RegistryError, match=r"no alias 'canary'; aliases: production -> 1; versions: 1"):
        registry.resolve("support-tickets@canary")
    for bad in ("tickets@", "@3", "a@b@c", ""):
        with pytest.raises(RegistryError, match="cannot read model reference"):
            registry.resolve(bad)


def test_set_alias_needs_an_existing_version_and_a_word(registry: Registry) -> None:
    release(registry)
    with pytest.raises(RegistryError, match="tickets has no version 5"):
        registry.set_alias("tickets", "staging", 5)
    with pytest.raises(RegistryError, match="cannot be an alias"):
        registry.set_alias("tickets", "v2", 1)
    assert registry.aliases("tickets") == {"production": 1}
    entry = registry.audit_log("tickets", limit=1)[0]
    assert entry.action == "alias" and entry.detail["to"] == 1


def test_release_names_must_be_resolvable(registry: Registry) -> None:
    with pytest.raises(RegistryError, match="cannot release under the name"):
        release(registry, name="bad@name")
    assert registry.list_releases() == []


def test_release_config_round_trips_in_order(registry: Registry) -> None:
    config = {"task": {"output_schema": {"properties": {"z": {}, "a": {}}}}, "seed": 7}
    made = release(registry, config=config)
    assert made.config == config
    assert list(registry.resolve("tickets").config["task"]["output_schema"]["properties"]) == ["z", "a"]
