"""`slmkit synth` with the deterministic template teacher (tests/data/template_teacher.py, not a model).

The template answers every request the same way each time, and a script plants the replies the
checks must catch, so each test knows which rows must train and which must be dropped, and why.
A real teacher behind a real `slmkit serve` is in test_synth_serve.py.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from slmkit.config import load_config
from slmkit.data import open_dataset, run_data_build
from slmkit.data.synth import run_synth
from slmkit.data.synth_plan import plan_requests
from slmkit.data.synth_teacher import Journal, Reply
from slmkit.errors import ConfigError
from slmkit.registry import Registry
from slmkit.task import Task
from tests.conftest import read_jsonl, write_project
from tests.data.template_teacher import TemplateTeacher

SYNTH = {
    "synth.kinds": ["paraphrase", "same_label"],
    "synth.per_seed": 1,
    "synth.semantic": False,
    "synth.min_real_share": 0.0,
}


def project(tmp_path: Path, base: Path, **overrides):
    root = write_project(tmp_path / "project", base, rows=60, overrides={**SYNTH, **overrides})
    config = load_config(root)
    run_data_build(config)
    return config


def parent_of(config):
    registry = Registry(config.state_dir)
    try:
        return open_dataset(config, registry)
    finally:
        registry.close()


def rejects_of(result) -> dict[str, list[dict]]:
    by_kind: dict[str, list[dict]] = {}
    for row in read_jsonl(result.path / "synthetic_rejects.jsonl"):
        by_kind.setdefault(row["kind"], []).append(row)
    return by_kind


def test_every_reply_is_checked_and_each_planted_fault_is_dropped_with_its_reason(tmp_path, tiny_model_dir):
    config = project(tmp_path, tiny_model_dir)
    parent = parent_of(config)
    train, gold = parent.examples("train"), parent.examples("gold")
    with_order = next(e for e in train if e.output["order_id"] and e.output["order_id"] in e.input)
    others = [e for e in train if e is not with_order and e.output["priority"] != "urgent" and "lawyer" not in e.input]
    conflicting = next(e for e in train if e.output != others[2].output and e is not with_order)
    planted = {
        others[0].id: json.dumps(gold[0].fields),  # a gold row's input: decontaminated
        others[1].id: json.dumps(others[1].fields),  # the seed itself, unchanged: a duplicate
        others[2].id: json.dumps(conflicting.fields),  # another real row's input, another answer
        with_order.id: json.dumps({"subject": "help", "body": "my order is missing, please look into it"}),
        others[3].id: json.dumps({"subject": "refund", "body": "refund me now or my lawyer calls you tomorrow"}),
        others[4].id: "Sure! Here is a rewritten ticket, and mail bob.smith@example.org for more.",
        others[5].id: Reply("", None, error="APIConnectionError: connection refused"),
        others[6].id: json.dumps({"subject": "", "body": "   "}),
        others[7].id: json.dumps({"subject": "Hi", "body": "write to jane.doe@example.com about my account please"}),
    }

    def script(request):
        seed = request.meta["ident"]
        if request.meta["kind"] == "paraphrase" and seed in planted:
            reply = planted[seed]
            return Reply(request.key, None, error=reply.error) if isinstance(reply, Reply) else reply
        return None

    teacher = TemplateTeacher(script)
    result = run_synth(config, teacher=teacher, log=lambda line: None)

    rejects = rejects_of(result)
    expected = {
        "gold_leak": (others[0].id, f"gold row {gold[0].id}"),
        "duplicate": (others[1].id, f"real row {others[1].id}"),
        "conflict": (others[2].id, "with another answer"),
        "ungrounded": (with_order.id, with_order.output["order_id"]),
        "rule": (others[3].id, "escalates (input mentions 'lawyer')"),
        "unparseable": (others[4].id, "not a JSON object"),
        "teacher": (others[5].id, "connection refused"),
        "empty": (others[6].id, "the input is empty"),
    }
    for kind, (seed, reason) in expected.items():
        rows = [r for r in rejects.get(kind, []) if r["synthetic"]["seeds"] == [seed]]
        assert rows, f"no {kind} reject for seed {seed}: {rejects.keys()}"
        assert reason in rows[0]["reason"], rows[0]
        assert rows[0]["synthetic"]["kind"] == "paraphrase" and len(rows[0]["synthetic"]["prompt_sha256"]) == 64

    # Every reply is accounted for: accepted into train, or dropped with its reason.
    child = parent_of(config)
    assert child.version == result.version != parent.version
    synthetic = [row for row in read_jsonl(child.path / "train.jsonl") if "synthetic" in row]
    assert len(synthetic) == result.accepted > 0
    assert result.accepted + sum(len(rows) for rows in rejects.values()) == result.planned == len(teacher.calls)
    # Real rows stay as they were; validation and gold are the parent's, byte for byte.
    assert (child.path / "train.jsonl").read_bytes().startswith((parent.path / "train.jsonl").read_bytes())
    for name in ("validation.jsonl", "gold.jsonl"):
        assert (child.path / name).read_bytes() == (parent.path / name).read_bytes()
    assert child.gold_hash == parent.gold_hash
    # Provenance: the seed whose answer a row keeps, the teacher, the prompt it answered.
    journal = Journal(config.state_dir / "synth" / "journal.jsonl")
    seeds = {e.id: e for e in train}
    for row in synthetic:
        prov = row["synthetic"]
        assert row["output"] == seeds[prov["seeds"][0]].output
        assert prov["teacher"] == {"model": "teacher", "temperature": 0.8, "seed": prov["teacher"]["seed"]}
        assert journal.get(prov["prompt_sha256"]) is not None
    # Personal data in a teacher's reply is replaced before anything is written.
    pii_row = next(r for r in synthetic if r["synthetic"]["seeds"] == [others[7].id])
    for leaked in ("jane.doe@example.com", "bob.smith@example.org"):  # kept and dropped rows, card, report
        assert not any(leaked in f.read_text() for f in child.path.iterdir())
    assert "jane.doe" not in pii_row["input"]
    # The card counts real and synthetic rows per label.
    report = child.report["synthetic"]
    assert sum(c["synthetic"] for c in report["by_label"].values()) == result.accepted
    assert all(
        c["real"] == parent.report["counts"]["by_label"]["train"][label] for label, c in report["by_label"].items()
    )
    card = (child.path / "report.html").read_text()
    assert "Synthetic rows" in card and "Training rows per label" in card and "gold_leak" in card

    # The transport failure was not journaled: the next run asks that one request again, nothing else.
    again = TemplateTeacher(script)
    rerun = run_synth(config, teacher=again, log=lambda line: None)
    assert [r.meta["ident"] for r in again.calls] == [others[5].id]
    assert rerun.cached == result.planned - 1


def test_the_real_row_floor_drops_synthetic_rows_from_the_commonest_labels_first(tmp_path, tiny_model_dir):
    config = project(tmp_path, tiny_model_dir, **{"synth.min_real_share": 0.8})
    real = len(parent_of(config).examples("train"))
    result = run_synth(config, teacher=TemplateTeacher(), log=lambda line: None)
    allowed = int(real * 0.2 / 0.8)
    assert result.accepted == allowed
    assert result.real_share >= 0.8
    dropped = rejects_of(result)["real_share"]
    assert "synth.min_real_share=0.8" in dropped[0]["reason"]
    # In turn per label, rarest first: no label gets two rows more than another (where it had seeds).
    added = [c["synthetic"] for c in result.by_label.values() if c["real"]]
    assert max(added) - min(added) <= 1
    rarest = min(result.by_label, key=lambda name: result.by_label[name]["real"])
    assert result.by_label[rarest]["synthetic"] == max(added)


def test_a_crashed_run_resumes_from_the_journal_without_paying_twice(tmp_path, tiny_model_dir):
    config = project(tmp_path, tiny_model_dir)
    first = TemplateTeacher()
    cut = run_synth(config, teacher=first, max_calls=10, log=lambda line: None)
    assert len(first.calls) == 10 and cut.left == cut.planned - 10
    journal = config.state_dir / "synth" / "journal.jsonl"
    # A crash in the middle of writing the next line leaves half a line: it is dropped, not read.
    with journal.open("a", encoding="utf-8") as fh:
        fh.write('{"key": "abc", "text": "{\\"subj')
    lines: list[str] = []
    second = TemplateTeacher()
    done = run_synth(config, teacher=second, log=lines.append)
    assert len(second.calls) == done.planned - 10  # the first ten were paid for already
    assert done.cached == 10 and done.left == 0
    assert lines[1].startswith(f"before: 10 already in the journal (free), {done.planned - 10} new calls")
    assert all(json.loads(line) for line in journal.read_text().splitlines())  # the torn line is gone
    third = TemplateTeacher()
    same = run_synth(config, teacher=third, log=lambda line: None)
    assert third.calls == [] and same.version == done.version  # same journal, same rows: the same version


def test_per_label_tops_up_the_rarest_labels_first(tmp_path, tiny_model_dir):
    config = project(tmp_path, tiny_model_dir, **{"synth.per_label": 12, "synth.per_seed": 3})
    task = Task.from_config(config)
    train = parent_of(config).examples("train")
    real = {label: sum(e.label == label for e in train) for label in task.labels}
    planned = plan_requests(task, config.synth, train, [])
    asked = {label: sum(p.label == label for p in planned) for label in task.labels}
    for label, n in real.items():
        # Up to 12 rows in all, and never more than per_seed x kinds per seed.
        assert asked[label] == min(max(0, 12 - n), 3 * 2 * n), (label, n, asked[label])
    first_round = [p.label for p in planned[: len([n for n in real.values() if n < 12])]]
    assert first_round == sorted(first_round, key=lambda label: real[label])  # rarest label asked first


def test_document_rows_are_grounded_in_their_chunk_with_spans(tmp_path, tiny_model_dir):
    root = tmp_path / "policy"
    (root / "data").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "docs" / "returns.md").write_text(
        "# Returns\n\nItems can be returned within 30 days of delivery. Refunds reach the card in 5 days.\n\n"
        "# Warranty\n\nLaptops carry a two-year warranty. Batteries are covered for one year.\n",
        encoding="utf-8",
    )
    rows = [
        {"question": f"question {i} about {topic}", "output": {"answer": f"answer {i}", "topic": topic}}
        for i, topic in enumerate(["policy", "other"] * 8)
    ]
    (root / "data" / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    config_yaml = {
        "base_model": str(tiny_model_dir),
        "task": {
            "name": "policy-qa",
            "input_fields": ["question"],
            "system_prompt": "Answer questions about the shop's policies from its guide.",
            "output_schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["answer", "topic"],
                "properties": {"answer": {"type": "string"}, "topic": {"enum": ["policy", "other"]}},
            },
            "label_field": "topic",
        },
        "data": {"sources": [{"path": "data/qa.jsonl"}], "documents": {"paths": ["docs/*.md"]}},
        "synth": {"kinds": ["document"], "per_document": 3, "semantic": False, "min_real_share": 0.0},
    }
    (root / "slmkit.yaml").write_text(json.dumps(config_yaml), encoding="utf-8")
    config = load_config(root)
    run_data_build(config)

    def script(request):
        passage = request.messages[-1]["content"]
        if request.meta["kind"] == "document" and request.meta["sample"] == 0 and "(Warranty)" in passage:
            return json.dumps({"input": {"question": "how long is the warranty?"},
                               "output": {"answer": "three years on everything", "topic": "policy"}})  # fmt: skip
        return None

    result = run_synth(config, teacher=TemplateTeacher(script, fields=("question",)), log=lambda line: None)
    child = parent_of(config)
    corpus = {c["id"]: c for c in read_jsonl(child.path / "corpus.jsonl")}
    synthetic = [row for row in read_jsonl(child.path / "train.jsonl") if "synthetic" in row]
    assert synthetic and len(synthetic) == result.accepted
    for row in synthetic:
        doc = row["synthetic"]["document"]
        chunk = corpus[doc["chunk"]]
        assert doc["chunk_sha256"] == hashlib.sha256(chunk["text"].encode()).hexdigest()
        span = doc["spans"][0]
        assert chunk["text"][span["start"] : span["end"]].casefold() == row["output"]["answer"].casefold()
    invented = rejects_of(result)["ungrounded"]
    assert "'three years on everything' is not in the passage" in invented[0]["reason"]


def test_a_judge_keeps_only_rows_at_its_threshold_and_an_unscorable_row_does_not_train(tmp_path, tiny_model_dir):
    config = project(tmp_path, tiny_model_dir, **{"synth.judge.enabled": True, "synth.judge.threshold": 4})
    scores = iter([5, 2, 4, "no idea"] * 100)

    def verdicts(request):
        if request.meta["kind"] != "judge":
            return None
        score = next(scores)
        return json.dumps({"score": score, "reason": "checked"}) if isinstance(score, int) else score

    judge = TemplateTeacher(verdicts)
    result = run_synth(config, teacher=TemplateTeacher(), judge=judge, log=lambda line: None)
    rejects = rejects_of(result)["judge"]
    assert any("judge score 2 < synth.judge.threshold 4" in r["reason"] for r in rejects)
    assert any(r["reason"].startswith("unscorable") for r in rejects)
    kept = [row for row in read_jsonl(result.path / "train.jsonl") if "synthetic" in row]
    assert kept and all(row["synthetic"]["judge"]["score"] >= 4 for row in kept)
    assert result.judge is not None and result.judge.calls == len(judge.calls)


def test_synth_settings_that_cannot_work_are_config_errors(tmp_path, tiny_model_dir):
    root = write_project(
        tmp_path / "bad",
        tiny_model_dir,
        rows=10,
        overrides={
            "task.refusal": None,
            "synth.kinds": ["out_of_scope", "document"],
            "synth.teacher.endpoint": "localhost:8001",
            "synth.judge.threshold": 9,
        },
    )
    with pytest.raises(ConfigError) as error:
        load_config(root)
    text = str(error.value)
    assert "synth.kinds[0]: out_of_scope rows are answered by the refusal rule: set task.refusal" in text
    assert "synth.kinds[1]: document rows are drawn from the corpus: list files in data.documents.paths" in text
    assert "synth.teacher.endpoint: must be an http(s) base URL" in text
    assert "synth.judge.threshold: must be on the scale 1-5 (got 9)" in text


def test_a_teacher_over_plain_http_to_another_machine_is_refused_unless_allowed(tmp_path, tiny_model_dir):
    def teacher_at(endpoint: str, **extra):
        overrides = {"synth.teacher.endpoint": endpoint, **{f"synth.teacher.{k}": v for k, v in extra.items()}}
        return write_project(
            tmp_path / f"p{len(list(tmp_path.iterdir()))}", tiny_model_dir, rows=10, overrides=overrides
        )

    with pytest.raises(ConfigError, match=r"synth\.teacher\.endpoint: http://teacher\.internal/v1 is plain http"):
        load_config(teacher_at("http://teacher.internal/v1"))
    for fine in ("https://teacher.internal/v1", "http://127.0.0.1:8001/v1"):
        assert load_config(teacher_at(fine)).synth.teacher.endpoint == fine
    assert load_config(teacher_at("http://teacher.internal/v1", allow_plain_http=True)).synth.teacher.allow_plain_http


def test_a_retrieval_tasks_synthetic_rows_get_context_and_citations_as_built_rows_do(tmp_path, tiny_model_dir):
    from tests.retrieval.conftest import REFUSAL, write_policy_project

    config = write_policy_project(
        tmp_path / "policy", tiny_model_dir, {"synth.semantic": False, "synth.min_real_share": 0.0, "synth.per_seed": 1}
    )
    run_data_build(config)
    result = run_synth(config, teacher=TemplateTeacher(fields=("question",)), log=lambda line: None)
    synthetic = [row for row in read_jsonl(result.path / "train.jsonl") if "synthetic" in row]
    assert len(synthetic) == result.accepted > 10
    cited = 0
    for row in synthetic:
        refs = [c["ref"] for c in row["context"]]
        assert 1 <= len(refs) <= 2 and set(row["output"]["citations"]) <= set(refs)
        if row["output"]["citations"]:
            chunk = next(c for c in row["context"] if c["ref"] == row["output"]["citations"][0])
            assert row["output"]["answer"] in chunk["text"]
            cited += 1
        else:
            assert row["output"] == {**REFUSAL, "citations": []}
    assert cited  # most answers are found again in the retrieved context
