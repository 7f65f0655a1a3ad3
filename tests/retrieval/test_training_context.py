"""Training rows with retrieved context (RAFT): the answer's chunk plus distractors in a share of rows,
distractors only with the refusal as the answer in the rest, never a restricted document; then the
chain (train, eval) runs on those rows on the tiny model."""

from __future__ import annotations

from slmkit.data import open_dataset, run_data_build
from slmkit.registry import Registry
from slmkit.task import Task
from tests.retrieval.conftest import PREFIXES, QUESTIONS, REFUSAL, write_policy_project

ANSWERS = {p + q: a for p in PREFIXES for q, a in QUESTIONS}


def test_data_build_attaches_the_answer_chunk_or_distractors_and_only_public_documents(tmp_path):
    config = write_policy_project(tmp_path / "p", "smollm2-135m-instruct", {"task.retrieval.oracle_share": 0.7})
    result = run_data_build(config)
    dataset = open_dataset(config, Registry(config.state_dir))
    rows = [row for split in ("train", "validation", "gold") for row in dataset.examples(split)]
    grounded = refused_distractors = 0
    for row in rows:
        context = row.context
        assert context is not None and 1 <= len(context) <= 2
        assert [c["ref"] for c in context] == [f"d{n}" for n in range(1, len(context) + 1)]
        # Restricted documents never reach training rows (retrieval.training_groups is empty).
        assert all(c["document"] in ("docs/returns.md", "docs/shipping.md") for c in context)
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
    # A row gets the same context and answer in every build (the seed and the row decide).
    again = open_dataset(config, Registry(config.state_dir), run_data_build(config).version)
    first = {r.input: (r.output, r.context) for r in dataset.examples("train")}
    second = {r.input: (r.output, r.context) for r in again.examples("train")}
    assert len(first.keys() & second.keys()) > 10
    assert all(first[key] == second[key] for key in first.keys() & second.keys())


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
