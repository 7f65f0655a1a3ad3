"""Human review: which gold items go to a person and why, the CSV round trip, every import error
naming its line and column, and a real sign-off that `slmkit check` reads, on the tiny model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from slmkit.config import ProjectConfig, ReviewConfig
from slmkit.errors import DataError
from slmkit.eval.review import ReportSource, export_review, select_for_review
from slmkit.eval.signoff import read_verdicts
from slmkit.task import Task
from tests.conftest import EXAMPLE, write_project
from tests.data.test_card import dump_dom, needs_chromium
from tests.test_release_cli import cli, ok

REFUSAL = {"category": "out_of_scope", "priority": "low", "order_id": None, "product": None}
BILLING = {"category": "billing", "priority": "normal", "order_id": "ORD-123456", "product": None}


@pytest.fixture(scope="module")
def task() -> Task:
    config = ProjectConfig.model_validate(yaml.safe_load((EXAMPLE / "slmkit.yaml").read_text()))
    return Task.from_config(config)


def item(item_id: str, gold: dict, answer: dict | str, confidence: float, exact: bool, **extra: object) -> dict:
    text = answer if isinstance(answer, str) else json.dumps(answer)
    side = {"text": text, "valid": True, "exact": exact, "confidence": confidence}
    return {"id": item_id, "input": f"ticket {item_id}", "gold": gold, "adapter": side, **extra}


def hand_built_report() -> dict:
    """Five items whose reasons are known: fine, wrong, refusal, unsure, tagged <script>."""
    return {
        "task": "support-tickets",
        "run_id": "run-1",
        "items": 5,
        "predictions": [
            item("T-1", BILLING, BILLING, 0.97, True),
            item("T-2", BILLING, {**BILLING, "category": "shipping"}, 0.91, False),
            item("T-3", BILLING, {**REFUSAL, "priority": "high"}, 0.88, False),
            item("T-4", BILLING, BILLING, 0.31, True),
            item("T-5", REFUSAL, REFUSAL, 0.99, True, tags=["edge-case"], input="<script>alert(1)</script> hi"),
        ],
    }


def test_each_item_goes_to_review_for_exactly_its_reasons(task: Task) -> None:
    chosen = select_for_review(hand_built_report(), task, ReviewConfig(min_confidence=0.5))
    # most reasons first, then the least confident
    assert [(i.id, i.reasons) for i in chosen] == [
        ("T-3", ("disagreement", "refusal")),  # carries the refusal's label, out_of_scope
        ("T-5", ("refusal", "tag:edge-case")),
        ("T-4", ("low_confidence",)),
        ("T-2", ("disagreement",)),
    ]
    # the lowest 40% by confidence (T-4 at 0.31, T-3 at 0.88) count as low confidence too
    shares = select_for_review(hand_built_report(), task, ReviewConfig(min_confidence=0.0, lowest_share=0.4))
    assert {i.id for i in shares if "low_confidence" in i.reasons} == {"T-3", "T-4"}
    # only the configured tags count
    untagged = select_for_review(hand_built_report(), task, ReviewConfig(tags=["legal"]))
    assert "tag:edge-case" not in {r for i in untagged for r in i.reasons}


def export(tmp_path: Path, task: Task, limit: int | None = None) -> Path:
    source = ReportSource(hand_built_report(), "d" * 64, "support-tickets@1")
    export_review(source, task, ReviewConfig(), tmp_path, limit=limit)
    return tmp_path / "review.csv"


def test_export_writes_csv_html_and_manifest_and_the_csv_round_trips(tmp_path: Path, task: Task) -> None:
    path = export(tmp_path, task)
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["id", "input", "gold", "answer", "reasons", "confidence", "verdict", "note"]
    by_id = {r["id"]: r for r in rows}
    assert set(by_id) == {"T-2", "T-3", "T-4", "T-5"}
    assert (
        by_id["T-5"]["input"] == "<script>alert(1)</script> hi" and by_id["T-5"]["reasons"] == "refusal; tag:edge-case"
    )
    assert json.loads(by_id["T-2"]["gold"]) == BILLING and by_id["T-4"]["confidence"] == "0.3100"
    assert all(r["verdict"] == "" and r["note"] == "" for r in rows)
    manifest = json.loads((tmp_path / "review.json").read_text())
    assert manifest["release"] == "support-tickets@1" and len(manifest["items"]) == 4
    page = (tmp_path / "review.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    # filled in as a reviewer would, the verdicts read back
    for r in rows:
        r["verdict"] = "OK" if r["id"] != "T-2" else "Wrong"
    rows[0]["note"] = "fine"
    write_rows(path, rows)
    verdicts = read_verdicts(path, manifest, hand_built_report())
    assert {k: v for k, (v, _) in verdicts.items()} == {"T-2": "wrong", "T-3": "ok", "T-4": "ok", "T-5": "ok"}
    assert verdicts[rows[0]["id"]][1] == "fine"
    # --limit keeps the most urgent
    limited = tmp_path / "limited"
    assert len(list(csv.DictReader(export(limited, task, limit=2).open()))) == 2


def write_rows(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


@pytest.mark.parametrize(
    ("edit", "line", "column", "says"),
    [
        (lambda rows: rows[1].update(id="T-99"), 3, "id", "'T-99' was not exported"),
        (lambda rows: rows[2].update(verdict="maybe"), 4, "verdict", "'maybe' is not a verdict"),
        (lambda rows: rows[0].update(verdict=""), 2, "verdict", "empty; write ok, wrong or unsure"),
        (lambda rows: rows[1].update(input="edited"), 3, "input", "differs from what was exported"),
        (lambda rows: rows[2].update(gold="{}"), 4, "gold", "differs from what was exported"),
        (lambda rows: rows.append(dict(rows[0])), 6, "id", "'T-3' is also on line 2"),
    ],
)
def test_each_import_error_names_the_file_line_and_column(tmp_path: Path, task: Task, edit, line, column, says) -> None:
    path = export(tmp_path, task)
    rows = list(csv.DictReader(path.open(encoding="utf-8", newline="")))
    for r in rows:
        r["verdict"] = "ok"
    edit(rows)
    write_rows(path, rows)
    manifest = json.loads((tmp_path / "review.json").read_text())
    with pytest.raises(DataError) as caught:
        read_verdicts(path, manifest, hand_built_report())
    assert f"{path}:{line}: column {column}: {says}" in str(caught.value)
    assert "nothing was recorded" in str(caught.value)


def test_a_deleted_row_is_named(tmp_path: Path, task: Task) -> None:
    path = export(tmp_path, task)
    rows = [{**r, "verdict": "ok"} for r in csv.DictReader(path.open(encoding="utf-8", newline=""))]
    write_rows(path, [r for r in rows if r["id"] != "T-4"])
    with pytest.raises(DataError, match="id 'T-4' was exported but has no row"):
        read_verdicts(path, json.loads((tmp_path / "review.json").read_text()), hand_built_report())


@needs_chromium
def test_review_page_in_chromium_shows_every_row_with_scripts_as_text(tmp_path: Path, task: Task) -> None:
    export(tmp_path, task)
    dom = dump_dom(tmp_path / "review.html", tmp_path)
    assert dom.count('<tr class="item">') == 4
    assert "<script" not in dom.lower() and "&lt;script&gt;alert(1)&lt;/script&gt; hi" in dom
    assert "tag:edge-case" in dom and "0.310" in dom


def test_review_of_a_real_release_signs_off_and_check_reads_it(tmp_path: Path, tiny_model_dir: Path) -> None:
    """Tiny model: eval records confidence; export, a clean sign-off passes `check`, a 'wrong' fails it."""
    project = write_project(
        tmp_path / "project",
        tiny_model_dir,
        overrides={
            "train.max_steps": 2,
            "train.batch_size": 4,
            "eval.max_items": 6,
            "eval.max_new_tokens": 12,
            "eval.compare_base": False,
            "eval.gates": ["schema_validity >= 0.0"],
            "release.rehearsal_items": 0,
            "release.blocking": ["review"],
        },
    )
    p = str(project)
    ok("data", "build", "-p", p)
    ok("train", "-p", p, "-q")
    ok("eval", "-p", p)
    code, out, err = cli("release", "-p", p)  # review evidence comes after a release, so it does not block one
    report = json.loads(next((project / ".slmkit" / "runs").glob("*/eval/report.json")).read_text())
    confidences = [pred["adapter"]["confidence"] for pred in report["predictions"]]
    assert all(0.0 < c <= 1.0 for c in confidences), confidences
    assert all(pred["adapter"]["min_logprob"] <= pred["adapter"]["mean_logprob"] for pred in report["predictions"])
    assert code == 0, err

    out = ok("review", "export", "-p", p, "--out", str(tmp_path / "review"))
    assert "6 of 6 gold items to review (support-tickets@1)" in out, out  # a random model: all wrong, unsure
    path = tmp_path / "review" / "review.csv"
    rows = list(csv.DictReader(path.open(encoding="utf-8", newline="")))
    assert all("low_confidence" in r["reasons"] for r in rows), [(r["reasons"], r["confidence"]) for r in rows]
    # The stratified sample includes an out-of-scope item, which a model that always refuses gets right.
    assert sum("disagreement" in r["reasons"] for r in rows) >= 5

    code, _, err = cli("check", "-p", p)
    assert code == 9 and "human review of edge cases signed off: missing" in err

    write_rows(path, [{**r, "verdict": "ok"} for r in rows])
    out = ok("review", "import", str(path), "-p", p, "--reviewer", "ana")
    assert "support-tickets@1: review PASSED: 6 items reviewed by ana: 6 ok, 0 wrong, 0 unsure" in out
    out = ok("check", "-p", p)
    assert "PASS    human review of edge cases signed off   6 items reviewed by ana: 6 ok" in out

    write_rows(path, [{**r, "verdict": "wrong" if i == 0 else "ok"} for i, r in enumerate(rows)])
    code, out, err = cli("review", "import", str(path), "-p", p, "--reviewer", "ana")
    assert code == 0 and "review FAILED" in out
    code, out, err = cli("check", "-p", p)
    assert code == 9 and "FAIL    human review of edge cases signed off   6 items reviewed by ana: 5 ok, 1 wrong" in out
