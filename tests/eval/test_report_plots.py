"""report.html's figures: per-class F1 by hand, and the page as headless Chromium builds it."""

from __future__ import annotations

import re

import pytest

from slmkit.eval.plots import _per_class_f1, _side_scores
from slmkit.eval.report import write_html
from tests.data.test_card import CHROMIUM, chart, dump_dom

# gold billing: 3 right, 1 called shipping; gold shipping: 2 right, 1 called billing, 1 invalid.
CONFUSION = {"billing": {"billing": 3, "shipping": 1}, "shipping": {"shipping": 2, "billing": 1, "(invalid)": 1}}


def test_per_class_f1_is_computed_from_the_confusion_matrix_by_hand() -> None:
    scores = _per_class_f1(CONFUSION)
    # billing: TP 3, FN 1, FP 1 -> 6/8; shipping: TP 2, FN 2, FP 1 -> 4/7
    assert scores == pytest.approx({"billing": 0.75, "shipping": 4 / 7})


def report() -> dict:
    metric = {"value": 0.625, "ci95": [0.3, 0.85]}
    predictions = [
        {
            "id": str(i),
            "input": f"ticket <b>{i}</b>",
            "gold": {},
            "adapter": {"text": "{}", "exact": i < 5, "confidence": c},
        }
        for i, c in enumerate([0.05, 0.31, 0.33, 0.97, 0.99, 1.0, 0.5, 0.52])
    ]
    return {
        "task": "support-tickets",
        "run_id": "r1",
        "dataset_version": "ds-1",
        "gold_hash": "ab" * 32,
        "items": 8,
        "engine": "transformers",
        "passed": True,
        "gates": [],
        "metrics": {
            "base": {"label_accuracy": {"value": 0.25, "ci95": [0.07, 0.59]}},
            "adapter": {"label_accuracy": metric},
        },
        "confusion": {"adapter": CONFUSION},
        "regression": {
            "production": {
                "against": "support-tickets@1",
                "paired_items": 8,
                "metrics": {
                    "label_accuracy": {
                        "release": 0.5,
                        "candidate": 0.625,
                        "difference": 0.125,
                        "ci95": [-0.2, 0.4],
                        "method": "exact McNemar; Newcombe paired interval",
                        "p_value": 1.0,
                        "right_to_wrong": [],
                        "wrong_to_right": ["4"],
                    }
                },
            }
        },
        "predictions": predictions,
    }


def test_sides_include_production_from_the_paired_comparison() -> None:
    sides = _side_scores(report())
    assert sides == {
        "base": {"label_accuracy": 0.25},
        "adapter": {"label_accuracy": 0.625},
        "production (support-tickets@1)": {"label_accuracy": 0.5},
    }


@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (CI installs it)")
def test_report_page_in_chromium_shows_the_four_figures(tmp_path) -> None:
    page = tmp_path / "report.html"
    write_html(report(), page)
    dom = dump_dom(page, tmp_path)
    sides = chart(dom, "sides")
    assert "label_accuracy · production (support-tickets@1)" in sides and "0.625" in sides
    f1 = chart(dom, "per-class-f1")
    assert "0.75" in f1 and "0.571" in f1
    heat = chart(dom, "confusion")
    assert "gold shipping, predicted (invalid): 1" in heat
    hist = chart(dom, "confidence")
    # 8 answers in 10 bins: 0.0-0.1 one, 0.3-0.4 two, 0.5-0.6 two, 0.9-1.0 three (1.0 counts in the last)
    counts = sorted(int(n) for n in re.findall(r": (\d+) rows</title>", hist))
    assert counts == [1, 2, 2, 3]
    assert "<b>0</b>" not in dom  # every input is escaped
