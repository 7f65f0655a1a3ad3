"""Retrieval through the real server and the official openai client: a caller never receives a chunk,
a citation, a title or a count from a document outside its key's groups; citations resolve to exact
spans; an index update reaches the running server; citations can only be refs the request was given."""

from __future__ import annotations

import json

import openai
import pytest

from slmkit.retrieval import Retriever, open_index, run_index_update
from slmkit.retrieval.context import request_context
from slmkit.serve import start_server
from slmkit.serve.keys import KeyStore
from slmkit.task import Task
from tests.retrieval.conftest import QUESTIONS, write_policy_project
from tests.serve.conftest import make_adapter, release_adapter

RESTRICTED = ("ZEBRAQUILL", "MARLINFOX", "Staff pricing handbook", "staff-pricing", "refund-limits", "800 euros")
ASKED = [q for q, _ in QUESTIONS] + [
    "What is the ZEBRAQUILL employee discount?",
    "Who signs off refunds above 2500 euros, MARLINFOX?",
    "Refund limits for finance approvers",
]


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_model_dir, embedder):
    root = tmp_path_factory.mktemp("served") / "p"
    config = write_policy_project(
        root,
        tiny_model_dir,
        {"task.output_schema.properties.answer.maxLength": 20, "serve.max_new_tokens": 64},
    )
    run_index_update(config, embedder=embedder)
    adapter = make_adapter(tiny_model_dir, root.parent / "adapter", seed=3)
    release_adapter(config, adapter, tiny_model_dir)
    with KeyStore(config.state_dir / "keys.db") as keys:
        tokens = {
            name: keys.add(name, None, groups)[1]
            for name, groups in (("public-app", []), ("staff-app", ["staff"]), ("finance-app", ["finance"]))
        }
    with start_server(config) as handle:
        handle.service._retriever = Retriever(open_index(config), embedder)  # the session's loaded MiniLM
        yield config, handle, tokens


def ask(handle, token: str, question: str):
    client = openai.OpenAI(base_url=handle.url, api_key=token, max_retries=0)
    return client.chat.completions.create(model="policy-qa", messages=[{"role": "user", "content": question}])


def test_a_caller_never_receives_anything_from_documents_outside_its_groups(served, embedder):
    config, handle, tokens = served
    settings = Task.from_config(config).cfg.retrieval
    with open_index(config) as store:
        retriever = Retriever(store, embedder)
        for question in ASKED:
            response = ask(handle, tokens["public-app"], question)
            everything = json.dumps(response.model_dump())
            for word in RESTRICTED:  # no chunk text, title, document id or citation of a restricted document
                assert word not in everything, (question, word)
            extras = response.model_extra["slmkit"]
            assert all(c["document"] in ("docs/returns.md", "docs/shipping.md") for c in extras["citations"])
            # The count is of chunks it may see: exactly what a public caller's search returns.
            assert extras["retrieved"] == len(request_context(retriever, settings, question, [])[0])

        staff = ask(handle, tokens["staff-app"], "What is the ZEBRAQUILL employee discount?")
        public = ask(handle, tokens["public-app"], "What is the ZEBRAQUILL employee discount?")
        finance = ask(handle, tokens["finance-app"], "What is the ZEBRAQUILL employee discount?")
    assert staff.model_extra["slmkit"]["retrieved"] >= 1  # the staff document is there for its group
    for other in (public, finance):  # nothing relevant they may see: the refusal, without the model
        extras = other.model_extra["slmkit"]
        assert (
            extras["retrieved"] == 0
            and extras["refused"]
            and extras["guard"]["reason"] == ("nothing relevant was retrieved")
        )
        assert json.loads(other.choices[0].message.content) == {"answer": "not in the documents", "citations": []}
    staff_docs = {c["document"] for c in staff.model_extra["slmkit"]["citations"]}
    assert "docs/internal/refund-limits.txt" not in staff_docs


def test_citations_are_refs_the_request_was_given_and_resolve_to_exact_spans(served):
    config, handle, tokens = served
    cited = 0
    for question in ASKED:
        response = ask(handle, tokens["staff-app"], question)
        extras = response.model_extra["slmkit"]
        answer = json.loads(response.choices[0].message.content)
        refs = [f"d{n}" for n in range(1, extras["retrieved"] + 1)]
        assert set(answer["citations"]) <= set(refs)  # decoded under this request's own enum
        assert [c["ref"] for c in extras["citations"]] == answer["citations"]
        for citation in extras["citations"]:
            cited += 1
            text = config.resolve_path(citation["document"]).read_text()
            start, end = citation["span"]
            assert (
                0 <= start < end <= len(text)
                and citation["title"]
                and citation["id"].startswith(citation["document"] + "#")
            )
    assert cited > 0  # the random adapter cites something at least once over these questions


def test_an_index_update_reaches_the_running_server_without_a_restart(served, embedder):
    config, handle, tokens = served
    question = "May I bring my dog into the store?"
    before = ask(handle, tokens["public-app"], question).model_extra["slmkit"]
    assert before["retrieved"] == 0 and before["refused"]
    (config.root / "docs" / "pets.md").write_text("# Pets\n\nDogs on a leash are welcome in all our stores.\n")
    assert run_index_update(config, embedder=embedder).added == ["docs/pets.md"]
    after = ask(handle, tokens["public-app"], question).model_extra["slmkit"]
    assert after["retrieved"] >= 1


def test_each_row_decodes_under_its_own_citation_refs(tiny_model_dir, tmp_path):
    """Per-request enums in the constrained decoder: sampled hot, a row cites only its own refs."""
    from slmkit.models import load_model, load_tokenizer, resolve_base_model
    from slmkit.models.generate import generate

    short = {"task.output_schema.properties.answer.maxLength": 20}
    config = write_policy_project(tmp_path / "p", tiny_model_dir, short)
    task = Task.from_config(config)
    base = resolve_base_model(str(tiny_model_dir))
    tokenizer, model = load_tokenizer(base), load_model(base)
    one = [{"ref": "d1", "heading": "A", "text": "a"}]
    three = [{"ref": f"d{n}", "heading": "B", "text": "b"} for n in (1, 2, 3)]
    contexts = [one, three, []]
    rows = contexts * 6
    prompts = [task.prompt_text(tokenizer, task.model_input("q", c)) for c in rows]
    outputs = generate(
        model, tokenizer, prompts, max_new_tokens=64, temperature=1.5, seed=7,
        schema=[task.decoding_schema(c) for c in rows],
    )  # fmt: skip
    seen: set[str] = set()
    for context, output in zip(rows, outputs, strict=True):
        value = json.loads(output.text)
        assert set(value["citations"]) <= {c["ref"] for c in context}
        seen.update(value["citations"])
    assert {"d2", "d3"} & seen  # the wider enum was used, so the narrow rows were really held back
