"""Releases through the CLI on a tiny model: provenance, a rehearsed rollback, the production
checklist, `releases show / diff / audit` and `registry verify`.

One module-scoped project holds two real releases (two trainings that differ in one setting);
tests that change the registry work on a copy of it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from slmkit.cli.main import main
from slmkit.registry import Registry
from tests.conftest import REPO, write_project

TASK = "support-tickets"


def cli(*args: str) -> tuple[int, str, str]:
    """Run `slmkit ARGS` in this process: (exit code, stdout, stderr)."""
    out, err, old = io.StringIO(), io.StringIO(), sys.argv
    sys.argv = ["slmkit", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old
    return code, out.getvalue(), err.getvalue()


def ok(*args: str) -> str:
    code, out, err = cli(*args)
    assert code == 0, f"slmkit {' '.join(args)} exited {code}: {err}"
    return out


def edit_config(project: Path, **dotted: object) -> None:
    config = yaml.safe_load((project / "slmkit.yaml").read_text())
    for key, value in dotted.items():
        target = config
        *parents, last = key.split("__")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = value
    (project / "slmkit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


@dataclass(frozen=True)
class Released:
    project: Path
    first_out: str
    second_out: str


@pytest.fixture(scope="module")
def released(tmp_path_factory, tiny_model_dir) -> Released:
    """Data, then two trainings (learning rate 0.001, then 0.002), each evaluated and released."""
    return make_released(tmp_path_factory.mktemp("releases") / "project", tiny_model_dir)


def make_released(root: Path, tiny_model_dir: Path) -> Released:
    """The `released` fixture's project, made in `root` (tests/ui shares one across its modules)."""
    project = write_project(
        root,
        tiny_model_dir,
        overrides={
            "train.max_steps": 3,
            "train.batch_size": 4,
            "train.eval_every": 3,
            "train.learning_rate": 0.001,
            "eval.max_items": 8,
            "eval.max_new_tokens": 16,
            "eval.gates": ["schema_validity >= 0.0"],
        },
    )
    p = str(project)
    ok("data", "build", "-p", p)
    ok("train", "-p", p, "-q")
    ok("eval", "-p", p)
    first = ok("release", "-p", p, "-m", "first")
    edit_config(project, train__learning_rate=0.002)
    ok("train", "-p", p, "-q")
    ok("eval", "-p", p)
    second = ok("release", "-p", p, "-m", "second")
    return Released(project, first, second)


def copy_of(released: Released, tmp_path: Path) -> Path:
    target = tmp_path / "project"
    shutil.copytree(released.project, target)
    return target


def test_the_second_release_rehearses_a_rollback_to_the_first(released: Released) -> None:
    assert "N/A     rollback tested                         first release behind 'production'" in released.first_out
    assert "rehearsing a rollback to support-tickets@1 on 16 of its gold items" in released.second_out
    assert (
        "rollback rehearsal: pass: 8/8 answers of support-tickets@1 matched its eval "
        "(agreement 1.000 >= 0.900; 8 text-identical)" in released.second_out
    )
    with Registry(released.project / ".slmkit") as registry:
        first, second = registry.get_release(TASK, 1), registry.get_release(TASK, 2)
        rehearsal = second.latest_evidence("rehearsal")
        assert rehearsal is not None and rehearsal.passed is True
        detail = rehearsal.detail
        # The eval recorded 8 gold items, so the 16-item sample is all of them.
        assert (detail["target"], detail["items"], detail["matched"], detail["agreement"]) == (
            "support-tickets@1",
            8,
            8,
            1.0,
        )
        assert detail["differed"] == [] and detail["seconds"] > 0
        report = json.loads(registry.store.path(first.eval_report_digest).read_text())
        # Reloaded as its eval generated: the recorded dtype, merge, answer length, batch size, label
        # scoring and refusal threshold.
        keys = ("dtype", "max_new_tokens", "merge", "batch_size", "constrained", "label_scoring", "refusal_threshold")
        assert detail["decoding"] == {k: report["decoding"][k] for k in keys}
        assert detail["decoding"]["label_scoring"] is True
        assert first.latest_evidence("rehearsal").status == "n/a"
        assert [e.action for e in registry.audit_log(TASK, limit=3)] == ["alias", "evidence", "release"]


def _git_head(directory: Path) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(directory), "rev-parse", "HEAD"], capture_output=True, text=True)
    except OSError:
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def test_a_release_records_where_everything_came_from(released: Released, tiny_model_dir: Path) -> None:
    import torch

    with Registry(released.project / ".slmkit") as registry:
        rel = registry.get_release(TASK, 2)
        run = registry.get_run(rel.run_id)
        report = json.loads(registry.store.path(rel.eval_report_digest).read_text())
        dataset = registry.get_dataset(rel.dataset_version)
    p = rel.provenance

    assert p["adapter"]["digest"] == rel.adapter_digest and p["adapter"]["method"] == "lora"
    assert (p["adapter"]["peft"]["peft_type"], p["adapter"]["peft"]["r"], p["adapter"]["peft"]["lora_alpha"]) == (
        "LORA",
        16,
        32,
    )
    assert len(p["adapter"]["peft"]["target_modules"]) == 14  # all-linear on 2 layers
    assert p["base_model"]["sha256"] == run.base_model["sha256"] and p["base_model"]["revision"] is None
    tokenizer_lines = "".join(
        f"{name}\t{hashlib.sha256((tiny_model_dir / name).read_bytes()).hexdigest()}\n"
        for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
        if (tiny_model_dir / name).exists()
    )
    assert p["tokenizer"]["sha256"] == hashlib.sha256(tokenizer_lines.encode()).hexdigest()
    assert p["chat_template"]["sha256"] == report["chat_template_sha256"]
    assert p["dataset"]["version"] == rel.dataset_version and p["dataset"]["digest"] == dataset.digest
    assert p["dataset"]["counts"]["gold"] == dataset.counts["gold"] and p["dataset"]["counts"]["input"] == 200
    assert p["dataset"]["pii"]["canaries"] == {"configured": 2, "checked": 2, "survived": 0}
    assert p["dataset"]["pii"]["rows_with_pii"] > 0 and p["dataset"]["dedup"]["removed"]["exact"] > 0
    assert p["gold_hash"] == rel.gold_hash == report["gold_hash"]
    assert p["eval"]["report_digest"] == rel.eval_report_digest and p["eval"]["passed"] is True
    assert [g["gate"] for g in p["eval"]["gates"]] == ["schema_validity >= 0.0"]
    assert (
        p["eval"]["metrics"]["adapter"]["schema_validity"] == report["metrics"]["adapter"]["schema_validity"]["value"]
    )
    assert p["config_sha256"] == hashlib.sha256(json.dumps(rel.config, sort_keys=True).encode()).hexdigest()
    assert p["code"]["slmkit"] == "0.1.0"
    head = _git_head(REPO)
    assert (p["code"]["slmkit_git"] or {}).get("commit") == head, "the slmkit checkout's commit (None outside git)"
    assert p["code"]["project_git"] is None, "the tmp project is not a git checkout"
    assert p["libraries"]["torch"] == torch.__version__ and p["libraries"]["peft"]
    assert p["training"]["libraries"]["torch"] == torch.__version__
    assert p["hardware"]["cores"] == os.cpu_count() and p["hardware"]["ram_bytes"] > 2**28
    assert p["hardware"]["cpu"] and p["hardware"]["gpus"] == []
    assert rel.created_by and rel.note == "second" and rel.parent_version == 1


def test_releases_show_diff_and_list(released: Released) -> None:
    p = str(released.project)
    shown = ok("releases", "show", "2", "-p", p)
    with Registry(released.project / ".slmkit") as registry:
        first, second = registry.get_release(TASK, 1), registry.get_release(TASK, 2)
    for expected in (
        "support-tickets@2   aliases: production",
        "parent            support-tickets@1",
        f"digest            sha256:{second.adapter_digest}",
        "rehearsal         PASS  8/8 answers of support-tickets@1 matched its eval",
        "canaries 2 planted, 2 checked, 0 survived",
        "gate              PASS  schema_validity >= 0.0",
        "train.learning_rate  0.002",
        "note              second",
    ):
        assert expected in shown, expected
    # --project may come before the subcommand too, and a bare release command lists.
    assert "support-tickets@1   aliases: -" in ok("releases", "-p", p, "show", "1")

    diff = ok("releases", "diff", "1", "2", "-p", p)
    assert "config: 1 key(s) differ" in diff and "train.learning_rate  0.001 -> 0.002" in diff
    assert f"adapter           sha256:{first.adapter_digest} -> sha256:{second.adapter_digest}" in diff
    assert f"base model        sha256:{first.base_model['sha256']} (same)" in diff
    assert f"version           {first.dataset_version} (same)" in diff
    line = next(x for x in diff.splitlines() if x.strip().startswith("schema_validity"))
    before, after = (
        first.provenance["eval"]["metrics"]["adapter"]["schema_validity"],
        second.provenance["eval"]["metrics"]["adapter"]["schema_validity"],
    )
    assert line.split()[1:] == [f"{before:.3f}", f"{after:.3f}", f"{after - before:+.3f}"]

    listed = ok("releases", "-p", p).splitlines()
    assert listed == ok("releases", "list", "-p", p).splitlines()
    assert listed[1].startswith("2 ") and " production " in listed[1] and " pass " in listed[1]
    assert listed[2].startswith("1 ") and " n/a " in listed[2] and listed[2].rstrip().endswith("first")


def test_audit_says_who_moved_which_alias_when_and_why(released: Released, tmp_path: Path) -> None:
    p = str(copy_of(released, tmp_path))
    ok("rollback", "-p", p, "-m", "answers too slow")
    lines = ok("releases", "audit", "-p", p).splitlines()
    assert "rollback  support-tickets@production 2 -> 1: answers too slow" in lines[1]
    assert "alias     support-tickets@production 2 -> 1: answers too slow" in lines[0]
    assert any("release   support-tickets@2 (run " in x and 'after support-tickets@1): "second"' in x for x in lines)
    assert any("alias     support-tickets@production unset -> 1: release of version 1" in x for x in lines)
    assert {x.split()[3] for x in lines} == {"release", "alias", "rollback", "evidence"}
    everything = {x.split()[3] for x in ok("releases", "audit", "--all", "-p", p).splitlines()}
    assert {"dataset", "gold_lock", "eval"} <= everything


def test_releases_mirror_to_mlflow_and_a_configured_rollback_follows(released: Released, tmp_path: Path) -> None:
    pytest.importorskip("mlflow", reason="the MLflow mirror is tested where the dev extras installed mlflow-skinny")
    from mlflow import MlflowClient

    project = copy_of(released, tmp_path)
    p = str(project)
    code, _, err = cli("releases", "mirror", "-p", p)
    assert code == 7 and "no MLflow tracking URI" in err and "release.mlflow_uri" in err

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = ok("releases", "mirror", "--mlflow", uri, "-p", p)
    assert f"mirrored 2 release(s) of support-tickets to {uri}" in out
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert client.get_model_version_by_alias(TASK, "production").tags["slmkit.release"] == "support-tickets@2"

    edit_config(project, release__mlflow_uri=uri)
    out = ok("rollback", "-p", p, "-m", "canary regressed")
    assert "support-tickets@production: 2 -> 1" in out and "mirrored to MLflow: production -> v1" in out
    assert client.get_model_version_by_alias(TASK, "production").tags["slmkit.release"] == "support-tickets@1"
    assert len(client.search_model_versions(f"name = '{TASK}'")) == 2, "a rollback creates no model version"


def test_check_prints_every_item_and_fails_on_a_blocking_one(released: Released, tmp_path: Path) -> None:
    project = copy_of(released, tmp_path)
    p = str(project)
    out = ok("check", "-p", p)
    assert "production checklist for support-tickets@2" in out
    assert "PASS    rollback tested                         8/8 answers of support-tickets@1" in out
    assert "MISSING latency measured under load" in out
    # The example's rules (input drift left out: the test project has embeddings off) evaluate, except the
    # drift tests against the eval's 8 gold items: a test on so few could never call drift.
    assert "FAIL    monitoring alerts defined               2 of 5 rule(s) cannot evaluate: label mix drift: " in out
    assert "  ok    many refusals: refusal_rate > 0.2 over 1h: evaluates (from the request log); no verdict yet" in out
    assert (
        "  FAIL  less sure of its answers: confidence_drift: only 8 eval confidences; a drift test needs at "
        "least 30 (evaluate on more items)" in out
    )
    assert "every blocking item (schema, pii, gold_locked, rollback) passed" in out

    edit_config(project, monitor__alerts=[])
    assert "MISSING monitoring alerts defined" in ok("check", "-p", p)
    edit_config(
        project,
        release__blocking=["schema", "pii", "gold_locked", "rollback", "latency", "alerts"],
        monitor__alerts=[{"metric": "latency_p95_ms", "op": ">", "threshold": 800, "window": "10m"}],
    )
    code, out, err = cli("check", "-p", p)
    assert code == 9
    assert "PASS    monitoring alerts defined               1 rule(s) evaluate: latency_p95_ms > 800 over 10m" in out
    assert (
        "support-tickets@2 is not ready for production: latency measured under load: missing "
        "(no latency evidence recorded for this release" in err
    )
    assert "serving load benchmark" in err

    with Registry(project / ".slmkit") as registry:
        registry.record_evidence(TASK, 2, "latency", passed=True, detail={"summary": "p95 212 ms at 16 concurrent"})
    out = ok("check", "-p", p)
    assert "PASS    latency measured under load             p95 212 ms at 16 concurrent" in out
    assert cli("check", "1", "-p", p)[0] == 9, "version 1 has no latency evidence"


def test_registry_verify_names_an_altered_adapter(released: Released, tmp_path: Path) -> None:
    project = copy_of(released, tmp_path)
    p = str(project)
    assert ok("registry", "verify", "-p", p).startswith("ok: ")
    with Registry(project / ".slmkit") as registry:
        first = registry.get_release(TASK, 1)
        weights = registry.store.path(first.adapter_digest) / "adapter_model.safetensors"
    with open(weights, "ab") as fh:
        fh.write(b"\0")

    code, out, err = cli("registry", "verify", "-p", p)

    assert code == 7
    assert (
        f"PROBLEM  adapter artifact, adapter of run {first.run_id}, adapter of support-tickets@1: "
        f"sha256:{first.adapter_digest} was altered (its content now hashes to" in out
    )
    assert "1 of " in err and "are missing or altered" in err


def test_a_previous_release_that_no_longer_answers_as_recorded_blocks_the_release(
    released: Released, tmp_path: Path
) -> None:
    project = copy_of(released, tmp_path)
    p = str(project)
    with Registry(project / ".slmkit") as registry:
        serving = registry.get_release(TASK, 2)
        # Release 3 claims an eval whose recorded answers for two items differ from what its adapter
        # says: a report edited after the fact, stored and recorded as such under a new digest.
        report = json.loads(registry.store.path(serving.eval_report_digest).read_text())
        wrong = [item for item in report["predictions"] if not item["adapter"]["exact"]][:2]  # edited to differ
        edited = [item["id"] for item in wrong]
        for item in wrong:
            item["adapter"]["text"] = json.dumps(item["gold"])
        path = tmp_path / "edited-report.json"
        path.write_text(json.dumps(report))
        digest = registry.store.put_file(path)
        registry.record_artifact(digest, "eval_report", path.stat().st_size)
        registry.create_release(
            name=TASK,
            run_id=serving.run_id,
            adapter_digest=serving.adapter_digest,
            base_model=serving.base_model,
            dataset_version=serving.dataset_version,
            gold_hash=serving.gold_hash,
            eval_report_digest=digest,
            config=serving.config,
            note="recorded answers edited",
        )

    code, out, err = cli("release", "-p", p, "-m", "on top of an edited record")

    assert code == 9
    assert "release to support-tickets@production blocked by the production checklist: rollback tested: fail" in err
    assert "6/8 answers of support-tickets@3 matched its eval (agreement 0.750 < 0.900" in err
    assert f"differed: {', '.join(edited)}" in err and "slmkit rollback --to N" in err
    with Registry(project / ".slmkit") as registry:
        assert [r.version for r in registry.list_releases(TASK)] == [1, 2, 3]
        assert registry.aliases(TASK) == {"production": 3}

    # Not blocking: the release goes through, and its failed rehearsal stays on the record.
    edit_config(project, release__blocking=["schema", "pii", "gold_locked"])
    out = ok("release", "-p", p, "-m", "rollback not blocking")
    assert "released support-tickets@4" in out and "rollback rehearsal: fail: 6/8 answers" in out
    out = ok("check", "-p", p)
    assert "FAIL    rollback tested                         6/8 answers of support-tickets@3" in out
    with Registry(project / ".slmkit") as registry:
        assert registry.get_release(TASK, 4).latest_evidence("rehearsal").detail["differed"] == edited
