"""Generate the Lumora policy Q&A example for slmkit (retrieval next to a fine-tuned model).

    python examples/policy-qa/generate.py

Deterministic, standard library only. One table of facts (FACTS below) writes everything, so
the documents, the training questions and the evaluation questions can never disagree:

    docs/returns.md            public: return windows per product group, refunds, return shipping
    docs/warranty.html         public (an HTML page: read by trafilatura): warranty per product
    docs/shipping.md           public: delivery times per country, free-shipping threshold
    docs/internal/staff-pricing.md   front matter `groups: [staff]`: the staff discount
    docs/finance/refund-limits.md    `groups: [finance]` by the path rule in slmkit.yaml
    updates/                   the same documents as changed *after* training (fresh facts)
    data/questions.jsonl       training questions (paraphrases) with their short answers, plus
                               out-of-scope questions answered with the refusal
    eval/questions.jsonl       held-out questions, answers as of updates/: kind "fresh" (the fact
                               changed after training), "stable", or "absent" (not in any document)
    eval/qrels.jsonl           the same questions with the document that holds each answer

Training never sees the staff or finance documents (retrieval.training_groups is empty): the
adapter learns to read, cite and refuse on public policies, and answers staff questions only
from what a staff key retrieves at serving time.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 17
REFUSAL = "not in the documents"

# (product, warranty) and (product group, its products, return window): public facts.
WARRANTY = {
    "Lumora AeroBook 14": "2 years",
    "Lumora AeroBook Pro 16": "3 years",
    "PulseBuds Pro": "1 year",
    "PulseBuds Lite": "1 year",
    "HaloCam 2K": "18 months",
    "HaloCam Doorbell": "2 years",
    "Nimbus Smart Speaker": "2 years",
    "Orbit Smartwatch S2": "1 year",
    "VoltDock 7-in-1": "3 years",
    "Glide Wireless Mouse": "6 months",
    "Kinetic Mechanical Keyboard": "2 years",
    "Lumen 27 Monitor": "3 years",
}
RETURN_WINDOWS = {
    "laptops": (["Lumora AeroBook 14", "Lumora AeroBook Pro 16"], "14 days"),
    "audio": (["PulseBuds Pro", "PulseBuds Lite", "Nimbus Smart Speaker"], "30 days"),
    "cameras": (["HaloCam 2K", "HaloCam Doorbell"], "21 days"),
    "accessories": (["VoltDock 7-in-1", "Glide Wireless Mouse", "Kinetic Mechanical Keyboard"], "60 days"),
    "wearables and screens": (["Orbit Smartwatch S2", "Lumen 27 Monitor"], "30 days"),
}
DELIVERY = {
    "Germany": "1 to 2 working days",
    "Austria": "2 to 3 working days",
    "France": "3 to 4 working days",
    "Italy": "4 to 6 working days",
    "Spain": "4 to 6 working days",
    "the Netherlands": "2 to 3 working days",
    "Poland": "3 to 5 working days",
    "Sweden": "5 to 7 working days",
}
GENERAL = {
    "refund": ("When will I get my refund after returning something?", "within 5 working days"),
    "free": ("From what order value is shipping free?", "59 euros"),
    "label": ("Do I have to pay for the return label?", "free of charge"),
}
# What changes after training (updates/): a new warranty, a longer window, a faster country, a new threshold.
UPDATED = {
    ("warranty", "HaloCam 2K"): "3 years",
    ("returns", "audio"): "45 days",
    ("delivery", "Sweden"): "3 to 4 working days",
    ("general", "free"): "49 euros",
}
STAFF_DISCOUNT = "25 percent"
REFUND_LIMIT = "1500 euros"


def value(kind: str, key: str, updated: bool) -> str:
    base = {"warranty": WARRANTY, "delivery": DELIVERY}.get(kind)
    original = base[key] if base is not None else RETURN_WINDOWS[key][1] if kind == "returns" else GENERAL[key][1]
    return UPDATED.get((kind, key), original) if updated else original


# --- documents ----------------------------------------------------------------------------------


def returns_md(updated: bool) -> str:
    lines = ["---", "title: Returns policy", "---", "# Returns policy", "",
             "You can return any product bought from Lumora if it is complete and undamaged.", "",
             "## Return windows", ""]  # fmt: skip
    for group, (products, _) in RETURN_WINDOWS.items():
        window = value("returns", group, updated)
        lines += [f"The return window for {group} ({', '.join(products)}) is {window} from delivery.", ""]
    lines += [
        "## Refunds", "",
        f"We refund the original payment method {value('general', 'refund', updated)} after the parcel "
        "reaches our warehouse.", "",
        "## Return shipping", "",
        f"The return label is {value('general', 'label', updated)} for customers in the EU. Print it "
        "from your order page.", "",
    ]  # fmt: skip
    return "\n".join(lines)


def warranty_html(updated: bool) -> str:
    rows = "".join(
        f"<p>The {product} comes with a warranty of {value('warranty', product, updated)} from the date of "
        "purchase.</p>\n"
        for product in WARRANTY
    )
    return (
        "<!doctype html>\n<html><head><title>Warranty | Lumora</title>\n"
        "<script>window.analytics = 'page-view';</script></head>\n<body>\n"
        "<nav><a href='/'>Home</a> | <a href='/shop'>Shop</a> | <a href='/help'>Help</a></nav>\n"
        "<main>\n<h1>Warranty</h1>\n"
        "<p>Every Lumora product is covered against defects in materials and workmanship. Keep your "
        "receipt or order number: we need it for every claim.</p>\n"
        f"<h2>Warranty periods</h2>\n{rows}"
        "<h2>Claims</h2>\n<p>Open a claim from your order page. We repair or replace the product; a "
        "replacement carries the rest of the original warranty.</p>\n"
        "</main>\n<footer>Lumora GmbH, all rights reserved. Cookie settings.</footer>\n</body></html>\n"
    )


def shipping_md(updated: bool) -> str:
    lines = ["# Shipping", "", "## Delivery times", ""]
    for country in DELIVERY:
        lines += [f"Standard delivery to {country} takes {value('delivery', country, updated)}.", ""]
    lines += [
        "## Costs", "",
        f"Shipping is free for orders from {value('general', 'free', updated)}; below that it costs 4.90 "
        "euros.", "",
    ]  # fmt: skip
    return "\n".join(lines)


STAFF_MD = f"""---
title: Staff pricing
groups: [staff]
---
# Staff pricing

Lumora employees get a staff discount of {STAFF_DISCOUNT} on every product, for up to ten items per
calendar year. The discount cannot be combined with vouchers.

## How to order

Order through the staff shop with your employee number; the discount is applied at checkout.
"""

FINANCE_MD = f"""# Refund approval limits

Support agents may approve refunds up to {REFUND_LIMIT} on their own. Larger refunds need the
approval of a finance team lead, recorded in the ticket before the money is sent.
"""


# --- questions ----------------------------------------------------------------------------------

WARRANTY_Q = [
    "How long is the warranty on the {x}?",
    "What warranty does the {x} come with?",
    "warranty period for my {x}?",
    "How many years of warranty do I get with a {x}?",
    "Is the {x} covered by a warranty, and for how long?",
]
WARRANTY_HELD_OUT = "My {x} broke. How long does its warranty last?"
RETURNS_Q = [
    "How long do I have to return the {x}?",
    "What is the return window for a {x}?",
    "Can I still send back my {x}? How many days do I get?",
    "return period for {x}",
    "I changed my mind about the {x}. Until when can I return it?",
]
RETURNS_HELD_OUT = "How much time do I have to bring back a {x} I bought?"
DELIVERY_Q = [
    "How long does delivery to {x} take?",
    "Shipping time to {x}?",
    "When will my parcel arrive if I live in {x}?",
    "How many days is standard delivery to {x}?",
]
DELIVERY_HELD_OUT = "I am ordering from {x}. How long until the parcel gets here?"
GENERAL_Q = {
    "refund": ["When will I get my refund after returning something?", "How fast do refunds arrive?",
               "I sent my return back. When is the money refunded?"],
    "free": ["From what order value is shipping free?", "What is the minimum order for free shipping?",
             "When do I not pay for delivery?"],
    "label": ["Do I have to pay for the return label?", "What does a return label cost?",
              "Is return shipping free?"],
}  # fmt: skip
GENERAL_HELD_OUT = {
    "refund": "How long until my returned order is refunded?",
    "free": "How much do I need to spend to get free delivery?",
    "label": "Who pays the postage when I send something back?",
}
OUT_OF_SCOPE = [
    "Can you recommend a good pizza place near the station?",
    "What will the weather be like tomorrow?",
    "Write me a poem about autumn.",
    "Who won the football match yesterday?",
    "What is the capital of Australia?",
    "How do I bake sourdough bread?",
    "Can you help me with my maths homework?",
    "Tell me a joke about cats.",
    "What is the best smartphone from another brand?",
    "How do I learn to play the guitar?",
    "Translate 'good morning' into Japanese.",
    "What time does the cinema open?",
    # Personal data a customer pastes in: the data build replaces it, and this planted (test) card
    # number is the example's PII canary (data.pii.canaries): the build stops if it survives.
    "Please keep my card 4111 1111 1111 1111 on file for my next order.",
]
# In the domain, and close to the documents, but answered by none of them: the model must refuse.
ABSENT = [
    "How long is the warranty on the Aria Tablet 11?",
    "What is the return window for the TerraCharge Power Bank?",
    "How long does delivery to Portugal take?",
    "Do you offer gift wrapping for orders?",
    "Can I pay for my order in instalments?",
    "Do you price-match other shops?",
]


def training_rows(rng: random.Random) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []

    def add(question: str, answer: str) -> None:
        rows.append({"question": question, "output": {"answer": answer}})

    for product in WARRANTY:
        for template in WARRANTY_Q:
            add(template.format(x=product), value("warranty", product, False))
    for group, (products, _) in RETURN_WINDOWS.items():
        for template in RETURNS_Q:
            add(template.format(x=rng.choice(products)), value("returns", group, False))
    for country in DELIVERY:
        for template in DELIVERY_Q:
            add(template.format(x=country), value("delivery", country, False))
    for key, questions in GENERAL_Q.items():
        for question in questions:
            add(question, value("general", key, False))
    for question in OUT_OF_SCOPE:
        add(question, REFUSAL)
    rng.shuffle(rows)
    return rows


def eval_rows() -> list[dict[str, object]]:
    """Held-out phrasings; answers as the documents say after the updates."""
    rows: list[dict[str, object]] = []

    def add(question: str, kind: str, key: str, document: str, passage: str) -> None:
        fresh = (kind, key) in UPDATED
        rows.append({
            "question": question, "answer": value(kind, key, True), "document": document,
            "kind": "fresh" if fresh else "stable", "passage": passage,
        })  # fmt: skip

    for product in WARRANTY:
        add(WARRANTY_HELD_OUT.format(x=product), "warranty", product, "docs/warranty.html",
            f"The {product} comes with a warranty of")  # fmt: skip
    for group, (products, _) in RETURN_WINDOWS.items():
        add(RETURNS_HELD_OUT.format(x=products[-1]), "returns", group, "docs/returns.md",
            f"The return window for {group} (")  # fmt: skip
    for country in DELIVERY:
        add(DELIVERY_HELD_OUT.format(x=country), "delivery", country, "docs/shipping.md",
            f"Standard delivery to {country} takes")  # fmt: skip
    passages = {"refund": "We refund the original payment method", "free": "Shipping is free for orders from",
                "label": "The return label is"}  # fmt: skip
    for key, question in GENERAL_HELD_OUT.items():
        add(question, "general", key, "docs/returns.md" if key != "free" else "docs/shipping.md", passages[key])
    for question in ABSENT:
        rows.append({"question": question, "answer": REFUSAL, "document": None, "kind": "absent", "passage": ""})
    return rows


def main() -> None:
    rng = random.Random(SEED)
    for folder, updated in (("docs", False), ("updates", True)):
        (HERE / folder).mkdir(exist_ok=True)
        (HERE / folder / "returns.md").write_text(returns_md(updated))
        (HERE / folder / "warranty.html").write_text(warranty_html(updated))
        (HERE / folder / "shipping.md").write_text(shipping_md(updated))
    (HERE / "docs" / "internal").mkdir(exist_ok=True)
    (HERE / "docs" / "internal" / "staff-pricing.md").write_text(STAFF_MD)
    (HERE / "docs" / "finance").mkdir(exist_ok=True)
    (HERE / "docs" / "finance" / "refund-limits.md").write_text(FINANCE_MD)
    (HERE / "data").mkdir(exist_ok=True)
    write_jsonl(HERE / "data" / "questions.jsonl", training_rows(rng))
    (HERE / "eval").mkdir(exist_ok=True)
    evals = eval_rows()
    # Relevance by passage: the chunk stating the fact (whatever the chunk settings), read per chunk.
    qrels = [{"query": r["question"], "relevant_text": [r["passage"]]} for r in evals if r["document"]]
    qrels += [
        {"query": "What discount do staff get?", "relevant_text": ["staff discount of"], "groups": ["staff"]},
        {"query": "Up to what amount may an agent approve a refund?", "relevant_text": ["may approve refunds up to"],
         "groups": ["finance"]},
    ]  # fmt: skip
    write_jsonl(HERE / "eval" / "qrels.jsonl", qrels)
    for row in evals:
        row.pop("passage")
    write_jsonl(HERE / "eval" / "questions.jsonl", evals)


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
