"""Reports that scale with the label count: a 77-label eval report and data card, laid out by headless Chromium.

Every label name must be on the page whole (inside its chart, not cut at the left edge), the
per-class figure sorted worst first without a side that scored 0 everywhere, and the most
confused pairs listed with their counts and an example.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from slmkit.data.card import write_card
from slmkit.eval.report import write_html
from tests.data.test_card import CHROMIUM, realistic_report

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium is not installed (CI installs it: apt-get install chromium)"
)

# 77 banking-style intents, the longest 39 characters, many differing only at the end.
STEMS = [
    "card_payment_wrong_exchange_rate", "wrong_exchange_rate_for_cash_withdrawal", "transaction_charged_twice",
    "extra_charge_on_statement", "verify_source_of_funds", "pending_top_up", "top_up_by_bank_transfer_charge",
    "declined_card_payment", "balance_not_updated_after_cheque_or_cash_deposit", "card_arrival", "lost_or_stolen_card",
]  # fmt: skip
LABELS = [f"{STEMS[i % len(STEMS)]}_{i // len(STEMS)}" for i in range(77)]


def report() -> dict:
    """An eval report of 77 labels: the adapter right on most items, one confusion repeated; the base always invalid."""
    predictions, adapter, base = [], {}, {}
    for i, label in enumerate(LABELS):
        for k in range(3):
            answer = label
            if i < 5 and k == 0:
                answer = LABELS[i + 1]  # five labels each lose an item to their neighbour
            if i == 10:
                answer = LABELS[11]  # label 10 is always answered as 11: the worst class and the top pair
            predictions.append(
                {
                    "id": f"{i}-{k}",
                    "input": f"message {k} about {label.replace('_', ' ')}",
                    "gold": {"intent": label},
                    "adapter": {"text": json.dumps({"intent": answer}), "exact": answer == label, "confidence": 0.9},
                }
            )
            adapter.setdefault(label, {}).setdefault(answer, 0)
            adapter[label][answer] += 1
            base.setdefault(label, {"(invalid)": 0})["(invalid)"] += 1
    metric = {"value": 0.9, "ci95": [0.85, 0.94]}
    return {
        "task": "banking",
        "run_id": "r1",
        "dataset_version": "ds-1",
        "gold_hash": "ab" * 32,
        "items": len(predictions),
        "label_field": "intent",
        "engine": "transformers",
        "passed": True,
        "gates": [],
        "metrics": {
            "base": {"label_accuracy": {"value": 0.0, "ci95": [0, 0.02]}},
            "adapter": {"label_accuracy": metric},
        },
        "confusion": {"base": base, "adapter": adapter},
        "regression": {},
        "predictions": predictions,
    }


CLIPPED = """() => {
  const out = [];
  for (const svg of document.querySelectorAll('svg.chart')) {
    const box = svg.getBoundingClientRect();
    for (const text of svg.querySelectorAll('text')) {
      const r = text.getBoundingClientRect();
      if (r.width === 0) continue;
      if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1)
        out.push([svg.dataset.chart, text.textContent.trim()]);
    }
  }
  return out;
}"""


def _laid_out(page_path: Path) -> tuple[list, str]:
    """(texts that stick out of their chart, the page's text) as Chromium lays the page out."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(page_path.as_uri())
        clipped = page.evaluate(CLIPPED)
        text = page.inner_text("body")
        browser.close()
    return clipped, text


@needs_chromium
def test_a_77_label_eval_report_names_every_class_whole_worst_first(tmp_path):
    path = tmp_path / "report.html"
    write_html(report(), path)
    html = path.read_text()

    per_class = re.search(r'<svg[^>]*data-chart="per-class-f1".*?</svg>', html, re.S).group(0)
    names = re.findall(r'class="label">([^<]+)<title>', per_class)
    assert len(names) == 77 and set(names) == set(LABELS)  # one bar per class: the base side is left out
    assert names[0] == LABELS[10] and names[1] == LABELS[11]  # F1 0, then the class that absorbed its items
    assert "Left out of the per-class figure: base, which scored F1 0 on every class." in html
    # The most confused pairs: label 10 answered as 11 three times, with an example input.
    pairs = re.search(r'<table class="confused">.*?</table>', html, re.S).group(0)
    first = re.search(
        r"<tr><td class=l>([^<]+)</td><td class=l>([^<]+)</td><td>(\d+)</td><td class=l>([^<]*)</td>", pairs
    )
    assert first.groups()[:3] == (LABELS[10], LABELS[11], "3") and LABELS[10].replace("_", " ") in first.group(4)
    assert "Confusion matrix of adapter: 77 labels, in report.json" in html  # no 77 x 77 tables

    clipped, text = _laid_out(path)
    assert clipped == [], clipped[:5]
    assert all(label in text for label in LABELS)


@needs_chromium
def test_the_data_card_rows_per_label_chart_names_77_labels_whole(tmp_path):
    card = realistic_report()
    card["by_label"] = {split: {label: 10 + i for i, label in enumerate(LABELS)} for split in ("train", "gold")}
    path = tmp_path / "card.html"
    write_card(card, path)
    clipped, text = _laid_out(path)
    assert clipped == [], clipped[:5]
    assert all(label in text for label in LABELS)
    chart = re.search(r'<svg[^>]*data-chart="labels".*?</svg>', path.read_text(), re.S).group(0)
    assert set(re.findall(r'class="label">([^<]+)<title>', chart)) == set(LABELS)
