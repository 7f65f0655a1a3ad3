"""`slmkit eval` against the release production points at, on the tiny model: the regression
section of report.json, its table, and a no_regression_vs gate that blocks `slmkit release`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from slmkit.registry import Registry
from tests.conftest import write_project
from tests.test_release_cli import cli, edit_config, ok

TASK = "support-tickets"
GATE = "schema_validity no_regression_vs production margin 0.0"


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir) -> Path:
    """Release 1, then a second training evaluated against it; both record the no-regression gate."""
    project = write_project(
        tmp_path_factory.mktemp("regression") / "project",
        tiny_model_dir,
        overrides={
            "train.max_steps": 3,
            "train.batch_size": 4,
            "train.eval_every": 3,
            "eval.max_items": 8,
            "eval.max_new_tokens": 16,
            "eval.bootstrap_rounds": 200,
            "eval.gates": ["schema_validity >= 0.0", GATE],
        },
    )
    p = str(project)
    ok("data", "build", "-p", p)
    ok("train", "-p", p, "-q")
    first = ok("eval", "-p", p)
    assert f"PASS  {GATE:<38} (no release behind 'production' yet: nothing to regress from)" in first
    ok("release", "-p", p, "-m", "first")
    edit_config(project, train__learning_rate=0.002)
    ok("train", "-p", p, "-q")
    return project


def test_eval_compares_with_production_and_the_gate_blocks_the_release(project: Path, tmp_path: Path) -> None:
    p = str(project)
    code, out, err = cli("eval", "-p", p)
    # A margin of 0 asks to prove the candidate no worse at all: with 8 items no interval can.
    assert code == 6, err
    assert "regression vs support-tickets@1 (production), 8 paired items:" in out
    assert "schema_validity" in out and "right->wrong" in out
    with Registry(project / ".slmkit") as registry:
        run = registry.get_run(None, task=TASK)
    eval_dir = project / ".slmkit" / "runs" / run.run_id / "eval"
    report = json.loads((eval_dir / "report.json").read_text())
    section = report["regression"]["production"]
    assert section["against"] == "support-tickets@1" and section["paired_items"] == 8
    validity = section["metrics"]["schema_validity"]
    assert validity["method"] == "exact McNemar; Newcombe paired interval"
    low, high = validity["ci95"]
    assert low < validity["difference"] <= high or low <= validity["difference"] < high
    assert set(section["metrics"]) >= {"exact_match", "label_accuracy", "label_macro_f1", "field_f1"}
    flips = len(validity["right_to_wrong"]) + len(validity["wrong_to_right"])
    assert 0 <= flips <= 8
    [gate] = [g for g in report["gates"] if g["gate"] == GATE]
    assert not gate["passed"] and gate["compared_with"] == "support-tickets@1" and gate["threshold"] == 0.0
    assert (
        "Regression vs support-tickets@1"
        in (project / ".slmkit" / "runs" / run.run_id / "eval" / "report.html").read_text()
    )

    code, out, err = cli("release", "-p", p, "-m", "second")
    assert code == 6
    assert (
        f"{GATE}: difference {gate['observed']:+.3f} vs support-tickets@1 "
        f"(95% CI {low:+.3f} to {high:+.3f}); its lower bound needs >= +0.000" in err
    )


def test_a_comparison_with_a_release_no_longer_behind_the_alias_is_refused(project: Path) -> None:
    """Run 1 passed its no-regression gate when production pointed nowhere; production moved since."""
    with Registry(project / ".slmkit") as registry:
        first = registry.get_release(TASK, 1)
    code, _, err = cli("release", "-p", str(project), "--run", first.run_id)
    assert code == 6
    assert f"run {first.run_id} passed '{GATE}' against no release, but {TASK}@production is now {TASK}@1" in err
    assert f"slmkit eval --run {first.run_id}" in err


def test_eval_refuses_a_gold_set_changed_after_the_lock(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "project"
    shutil.copytree(project, copy)
    with Registry(copy / ".slmkit") as registry:
        dataset = registry.get_dataset(None, task=TASK)
        gold = registry.store.path(dataset.digest) / "gold.jsonl"
    gold.chmod(0o644)
    gold.write_text(gold.read_text().replace("billing", "shipping", 1))
    code, _, err = cli("eval", "-p", str(copy))
    assert code != 0 and "was changed after it was locked" in err


def test_a_pair_decoded_two_ways_is_refused_until_the_release_is_evaluated_the_same_way(
    project: Path, tmp_path: Path
) -> None:
    """Release 1's labels were scored; with label scoring off the candidate's are generated. Paired,
    that would measure the decoding: refused with the command, which then makes the pair possible."""
    copy = tmp_path / "project"
    shutil.copytree(project, copy)
    p = str(copy)
    edit_config(copy, serve__label_scoring=False)
    code, _out, err = cli("eval", "-p", p)
    assert code == 6, err
    with Registry(copy / ".slmkit") as registry:
        first = registry.get_release(TASK, 1)
        candidate = registry.get_run(None, task=TASK)
    report = json.loads((copy / ".slmkit" / "runs" / candidate.run_id / "eval" / "report.json").read_text())
    [gate] = [g for g in report["gates"] if g["gate"] == GATE]
    assert not gate["passed"]
    assert gate["reason"].startswith(
        "its eval report chose labels by scoring every allowed label and this evaluation by generating them"
    )
    assert f"slmkit eval --run {first.run_id}" in gate["reason"]

    # Evaluated again as the candidate is, release 1 pairs with it item by item.
    cli("eval", "-p", p, "--run", first.run_id)  # exit 6 too: the margin-0 gate against itself
    cli("eval", "-p", p, "--run", candidate.run_id)
    report = json.loads((copy / ".slmkit" / "runs" / candidate.run_id / "eval" / "report.json").read_text())
    [gate] = [g for g in report["gates"] if g["gate"] == GATE]
    assert "two decodings" not in gate["reason"] and "8 paired items" in gate["reason"]
    assert report["regression"]["production"]["paired_items"] == 8
