"""Training rows with retrieved context (RAFT, taken further): the answer's chunk plus distractors in a
share of rows, some with the answer's value changed (counterfactual) or the question's name swapped
(refusal), distractors only with the refusal in the rest, never a restricted document; then the chain
(train, eval) runs on those rows on the tiny model."""

from __future__ import annotations

import json
import re

import pytest

from slmkit.config import load_config
from slmkit.data import open_dataset, run_data_build
from slmkit.errors import ConfigError
from slmkit.registry import Registry
from slmkit.retrieval import alter, open_index
from slmkit.task import Task
from tests.retrieval.conftest import PREFIXES, QUESTIONS, REFUSAL, write_policy_project

ANSWERS = {p + q: a for p in PREFIXES for q, a in QUESTIONS}
WARRANTY = {
    "AeroBook 14": "2 years", "PulseBuds Pro": "1 year", "HaloCam 2K": "18 months", "VoltDock Hub": "3 years",
    "Nimbus Speaker": "2 years", "Orbit Watch S2": "1 year", "Glide Mouse": "6 months", "Lumen 27 Monitor": "3 years",
    "Kinetic Keyboard": "2 years",
}  # fmt: skip
WARRANTY_MD = "# Warranty\n\n## Warranty periods\n\n" + "".join(
    f"The {product} comes with a warranty of {period} from the date of purchase.\n\n"
    for product, period in WARRANTY.items()
)
# A section naming two products in one chunk: a swap finds every other name in the context already.
REPAIRS = {"Aria Tablet": "12 days", "Zephyr Drone": "20 days"}
REPAIRS_MD = "# Repairs\n\n## Repair times\n\n" + " ".join(
    f"A repair of the {product} takes {time}." for product, time in REPAIRS.items()
)
# The sentence stating each product's value, up to the value.
SENTENCE = {p: f"The {p} comes with a warranty of " for p in WARRANTY} | {
    p: f"A repair of the {p} takes " for p in REPAIRS
}
NAMED = {
    f"{p}How long is the warranty on the {product}?": (product, v) for p in PREFIXES for product, v in WARRANTY.items()
} | {
    f"{p}How long does a repair of the {product} take?": (product, v)
    for p in PREFIXES
    for product, v in REPAIRS.items()
}
# Text only the staff and finance documents hold: it must never reach a training row.
RESTRICTED = ("ZEBRAQUILL", "MARLINFOX", "800 euros", "2500 euros", "Staff pricing handbook", "docs/internal/")


def _rows(config, version=None):
    dataset = open_dataset(config, Registry(config.state_dir), version)
    return [row for split in ("train", "validation", "gold") for row in dataset.examples(split)]


def test_data_build_attaches_the_answer_chunk_or_distractors_and_only_public_documents(tmp_path):
    settings = {"oracle_share": 0.7, "counterfactual_share": 0.0, "entity_swap_share": 0.0}
    config = write_policy_project(
        tmp_path / "p", "smollm2-135m-instruct", {f"task.retrieval.{k}": v for k, v in settings.items()}
    )
    result = run_data_build(config)
    rows = _rows(config)
    grounded = refused_distractors = 0
    for row in rows:
        context = row.context
        assert context is not None and 1 <= len(context) <= 2
        assert [c["ref"] for c in context] == [f"d{n}" for n in range(1, len(context) + 1)]
        # Restricted documents never reach training rows (retrieval.training_groups is empty).
        assert all(c["document"] in ("docs/returns.md", "docs/shipping.md") for c in context)
        assert not any(c.get("altered") for c in context)  # both changes are off
        answer = ANSWERS.get(row.input)
        if row.output["citations"]:
            (ref,) = row.output["citations"]
            cited = next(c for c in context if c["ref"] == ref)
            assert answer is not None and answer in cited["text"] and row.output["answer"] == answer
            grounded += 1
        else:
            assert row.output == {**REFUSAL, "citations": []}
            if answer is not None and answer != "25 percent":  # answerable from public documents
                assert not any(answer in c["text"] for c in context)  # distractors only
                refused_distractors += 1
    answerable = sum(1 for r in rows if ANSWERS.get(r.input) not in (None, "25 percent"))
    assert grounded + refused_distractors == answerable
    assert 0.5 <= grounded / answerable <= 0.9  # about oracle_share
    counts = result.report["retrieval"]
    assert counts["answerable rows whose answer is in no document (refusal)"] == 4  # the staff-only fact
    # One chunker: corpus.jsonl holds the index's chunks, the same ids, spans, text and groups.
    corpus = [json.loads(line) for line in (result.path / "corpus.jsonl").read_text().splitlines()]
    with open_index(config) as store:
        indexed = store.conn.execute("SELECT chunk_id, doc_id, start, end, text FROM chunks ORDER BY chunk_id")
        assert sorted((c["id"], c["document"], *c["span"], c["text"]) for c in corpus) == [tuple(r) for r in indexed]
    assert {c["document"]: c["groups"] for c in corpus}["docs/internal/staff-pricing.md"] == ["staff"]
    # A row gets the same context and answer in every build (the seed and the row decide).
    again = run_data_build(config).version
    first = {r.input: (r.output, r.context) for r in _rows(config)}
    second = {r.input: (r.output, r.context) for r in _rows(config, again)}
    assert first == second


def _named_project(root):
    """The policy project plus a public warranty page whose questions name a product."""
    shares = {"oracle_share": 0.5, "counterfactual_share": 0.6, "entity_swap_share": 0.4, "shuffle_context": True}
    write_policy_project(root, "smollm2-135m-instruct", {f"task.retrieval.{k}": v for k, v in shares.items()})
    (root / "docs" / "warranty.md").write_text(WARRANTY_MD)
    (root / "docs" / "repairs.md").write_text(REPAIRS_MD)
    with (root / "data" / "questions.jsonl").open("a") as fh:
        for question, (_, period) in NAMED.items():
            fh.write(json.dumps({"question": question, "output": {"answer": period}}) + "\n")
    return load_config(root)


def test_counterfactual_and_name_swap_rows_teach_reading_and_never_carry_restricted_text(tmp_path):
    config = _named_project(tmp_path / "p")
    result = run_data_build(config)
    with open_index(config) as store:
        original = {r[0]: r[1] for r in store.conn.execute("SELECT chunk_id, text FROM chunks")}
    rows = _rows(config)
    kinds: dict[str, int] = {"value": 0, "name": 0}
    positions = set()
    for row in rows:
        everything = json.dumps(row.as_dict())
        assert not any(secret in everything for secret in RESTRICTED), row.input
        altered = [c for c in row.context if c.get("altered")]
        if altered:
            kinds[altered[0]["altered"]] += 1
        if row.output["citations"]:
            positions.add(row.output["citations"][0])
        if not altered:
            assert all(c["text"] == original[c["id"]] for c in row.context)  # untouched document text
            continue
        product, period = NAMED.get(row.input, (None, ANSWERS.get(row.input)))
        if altered[0]["altered"] == "value":
            # The answer follows the changed chunk: a value the documents never held, cited from that chunk.
            (chunk,) = altered
            answer = row.output["answer"]
            assert answer != period and re.sub(r"\d+", "#", answer).rstrip("s") == re.sub(r"\d+", "#", period).rstrip(
                "s"
            )
            assert row.output["citations"] == [chunk["ref"]] and alter.find(chunk["text"], answer)
            assert alter.find(original[chunk["id"]], period)
            # Only that one value changed: put back, the chunk is the document's text again.
            restored = chunk["text"].replace(answer, period) if product is None else None
            if product is not None:
                sentence = SENTENCE[product]
                assert sentence + answer in chunk["text"] and sentence + period in original[chunk["id"]]
                restored = chunk["text"].replace(sentence + answer, sentence + period)
            assert restored == original[chunk["id"]]
        else:
            # The question's product is nowhere in the context; another product stands in its sentence.
            assert product is not None and row.output == {**REFUSAL, "citations": []}
            assert not any(alter.find(c["text"], product) for c in row.context)
            for chunk in altered:  # another product stands in, or (all others there already) its sentence is gone
                text = original[chunk["id"]]
                changed = {alter.replace_name(text, product, other) for other in SENTENCE} - {text}
                changed.add(alter.drop_sentences(text, product))
                assert chunk["text"] in changed
            named = [n for c in row.context for n in alter.names(c["text"]) if n in SENTENCE]
            assert len(named) == len(set(named))  # no product named twice: a stand-in is never one already there
    assert kinds["value"] >= 5 and kinds["name"] >= 2
    assert len(positions) == 2  # shuffled: the answer's chunk is not always d1
    report = result.report["retrieval"]
    assert report["rows with the answer's chunk, its value changed (counterfactual)"] == kinds["value"]
    assert report["rows with the answer's chunk under another name (answer: the refusal)"] == kinds["name"]
    assert report["counterfactual_share"] == 0.6 and report["training_groups"] == []
    # Questions without a product name cannot be swapped: those rows get distractors only, and say so.
    assert report["name swap drawn, but the question names nothing its chunk holds (distractors only instead)"] > 0
    # A stand-in the context lacks where there is one; else the sentences naming the product go.
    assert report["name swaps: another name of the section stands in"] > 0
    assert report["name swaps: every other name is in the context, the sentences naming it dropped"] > 0
    card = (result.path / "report.html").read_text()
    assert "Retrieved context" in card and "counterfactual_share" in card
    example = report["examples"]["rows with the answer's chunk, its value changed (counterfactual)"]
    assert example["answer"] in example["text"]


def test_shares_that_add_up_to_more_than_all_rows_are_refused(tmp_path):
    shares = {"task.retrieval.oracle_share": 0.8, "task.retrieval.entity_swap_share": 0.3}
    with pytest.raises(ConfigError, match=r"task\.retrieval\.entity_swap_share: oracle_share \+ entity_swap_share"):
        write_policy_project(tmp_path / "p", "smollm2-135m-instruct", shares)


def test_training_and_eval_run_on_rows_with_context(tmp_path, tiny_model_dir):
    from slmkit.eval import run_eval
    from slmkit.train import run_train

    short = {"task.output_schema.properties.answer.maxLength": 20}
    config = write_policy_project(tmp_path / "p", tiny_model_dir, short)
    run_data_build(config)
    trained = run_train(config, progress=False, log=lambda _: None)
    evaluated = run_eval(config, run_id=trained.run_id, progress=False, log=lambda _: None)
    task = Task.from_config(config)
    assert "citations" in task.fields
    adapter = evaluated.metrics["adapter"]
    assert adapter["schema_validity"].value == 1.0  # decoded under each gold row's own citation refs
