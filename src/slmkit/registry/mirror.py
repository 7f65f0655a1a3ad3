"""Mirror releases into an MLflow model registry, for teams that already run one.

slmkit's own registry (SQLite + object store) stays the record; the mirror is a copy that
MLflow users can browse. Each slmkit release becomes one MLflow model version of the
registered model with the same name, created from an MLflow run that holds the adapter files
and the eval report, with the release's hashes as tags and its metrics as run metrics. Aliases
are copied as MLflow aliases, so `models:/support-tickets@production` resolves to the
version slmkit serves.

Mirroring is idempotent: a release already mirrored (found by its `slmkit.version` tag) is
not created again, so it runs after every release and rollback and fixes up a mirror that
missed some. Nothing is sent anywhere unless the user names a tracking URI.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from slmkit.errors import RegistryError
from slmkit.registry.records import Release
from slmkit.registry.registry import Registry

EXPERIMENT = "slmkit-releases"
VERSION_TAG = "slmkit.version"


@dataclass
class MirrorResult:
    """What one mirror pass did: slmkit version -> MLflow version, and the aliases now set."""

    name: str
    tracking_uri: str
    versions: dict[int, str] = field(default_factory=dict)
    created: list[int] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)
    removed_aliases: list[str] = field(default_factory=list)

    def summary_lines(self) -> list[str]:
        created = ", ".join(f"{self.name}@{v} -> MLflow v{self.versions[v]}" for v in self.created) or "none"
        aliases = ", ".join(f"{a} -> v{v}" for a, v in sorted(self.aliases.items())) or "none"
        lines = [
            f"mirrored {len(self.versions)} release(s) of {self.name} to {self.tracking_uri}",
            f"  new model versions: {created}",
            f"  aliases: {aliases}",
        ]
        if self.removed_aliases:
            lines.append(f"  removed stale aliases: {', '.join(sorted(self.removed_aliases))}")
        return lines


def mirror_to_mlflow(
    registry: Registry,
    name: str,
    tracking_uri: str,
    *,
    experiment: str = EXPERIMENT,
    log: Callable[[str], None] = print,
) -> MirrorResult:
    """Copy every release of `name` and its aliases into the MLflow registry at `tracking_uri`."""
    # MLflow 3 reports usage to its makers unless told not to; slmkit sends nothing unasked.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException
    except ImportError as exc:
        raise RegistryError(
            "mirroring to MLflow needs the mlflow client",
            hint="pip install mlflow-skinny (with sqlalchemy and alembic for a sqlite:/// store), or mlflow",
        ) from exc

    releases = registry.list_releases(name)
    if not releases:
        raise RegistryError(f"no release of {name} to mirror", hint="run `slmkit release` first")
    result = MirrorResult(name, tracking_uri)
    try:
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        experiment_id = _experiment(client, experiment, tracking_uri)
        _registered_model(client, name, MlflowException)
        mirrored = _mirrored_versions(client, name)
        for rel in releases:
            if rel.version in mirrored:
                result.versions[rel.version] = mirrored[rel.version]
                continue
            result.versions[rel.version] = _mirror_release(client, registry, experiment_id, rel)
            result.created.append(rel.version)
            log(f"  {rel.ref} -> MLflow model version {result.versions[rel.version]}")
        wanted = {alias: result.versions[version] for alias, version in registry.aliases(name).items()}
        current = client.get_registered_model(name).aliases or {}
        for alias, version in wanted.items():
            if str(current.get(alias)) != version:
                client.set_registered_model_alias(name, alias, version)
        for alias in set(current) - set(wanted):
            client.delete_registered_model_alias(name, alias)
            result.removed_aliases.append(alias)
        result.aliases = wanted
    except MlflowException as exc:
        raise RegistryError(
            f"MLflow at {tracking_uri} refused the mirror of {name}: {exc.message}",
            hint="check the tracking URI and that its server accepts model registry calls",
        ) from exc
    return result


def _experiment(client: Any, name: str, tracking_uri: str) -> str:
    found = client.get_experiment_by_name(name)
    if found:
        return str(found.experiment_id)
    return str(client.create_experiment(name, artifact_location=artifact_location(tracking_uri)))


def artifact_location(tracking_uri: str) -> str | None:
    """Where a local SQLite store's artifacts go: beside its database file. Left to MLflow, they
    would land in ./mlruns of whatever directory the command ran in. A server decides for itself."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    database = Path(tracking_uri.removeprefix("sqlite:///")).resolve()
    return (database.parent / "mlflow-artifacts").as_uri()


def _registered_model(client: Any, name: str, error: type[Exception]) -> None:
    try:
        client.get_registered_model(name)
    except error:
        client.create_registered_model(name, description=f"Mirrored from slmkit releases of the task {name}.")


def _mirrored_versions(client: Any, name: str) -> dict[int, str]:
    """slmkit version -> MLflow version for the versions an earlier mirror created."""
    found: dict[int, str] = {}
    for mv in client.search_model_versions(f"name = '{name}'"):
        tag = (mv.tags or {}).get(VERSION_TAG)
        if tag and tag.isdigit():
            found[int(tag)] = str(mv.version)
    return found


def _mirror_release(client: Any, registry: Registry, experiment_id: str, rel: Release) -> str:
    tags = release_tags(rel)
    run = client.create_run(experiment_id, run_name=rel.ref, tags=tags)
    run_id = run.info.run_id
    try:
        for key, value in _metrics(registry, rel).items():
            client.log_metric(run_id, key, value)
        client.log_artifacts(run_id, str(registry.store.path(rel.adapter_digest)), artifact_path="adapter")
        client.log_artifact(run_id, str(registry.store.path(rel.eval_report_digest)), artifact_path="eval")
        client.set_terminated(run_id)
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    version = client.create_model_version(
        rel.name,
        source=f"runs:/{run_id}/adapter",
        run_id=run_id,
        tags=tags,
        description=rel.note or None,
    )
    return str(version.version)


def release_tags(rel: Release) -> dict[str, str]:
    """The identity of a release as MLflow tags (strings only)."""
    base = rel.base_model
    return {
        VERSION_TAG: str(rel.version),
        "slmkit.release": rel.ref,
        "slmkit.run_id": rel.run_id,
        "slmkit.adapter_sha256": rel.adapter_digest,
        "slmkit.base_model": str(base.get("model_id") or base.get("spec") or ""),
        "slmkit.base_model_sha256": str(base.get("sha256") or ""),
        "slmkit.dataset_version": rel.dataset_version,
        "slmkit.gold_sha256": rel.gold_hash,
        "slmkit.eval_report_sha256": rel.eval_report_digest,
        "slmkit.parent_version": "" if rel.parent_version is None else str(rel.parent_version),
        "slmkit.created_by": rel.created_by,
        "slmkit.created_at": rel.created_at,
        "slmkit.method": str(rel.config.get("train", {}).get("method", "")),
    }


def _metrics(registry: Registry, rel: Release) -> dict[str, float]:
    """The adapter's gold-set metrics from the release's eval report (finite numbers only)."""
    path = registry.store.path(rel.eval_report_digest)
    report = json.loads(path.read_text(encoding="utf-8"))
    found: dict[str, float] = {}
    for metric, entry in report.get("metrics", {}).get("adapter", {}).items():
        value = entry.get("value") if isinstance(entry, dict) else entry
        if isinstance(value, int | float) and value == value:  # not NaN
            found[metric] = float(value)
    return found
