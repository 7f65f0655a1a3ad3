"""LLM-as-judge against real HTTP servers on free ports.

Most tests use tests/eval/judge_stub.py: a deterministic stdlib server that stands in for a
judge model (none runs on this machine) and misbehaves on cue. One test points the judge at
`slmkit serve` itself on the tiny model, to show the plumbing against a real slmkit endpoint.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from slmkit.config import JudgeConfig, load_config
from slmkit.errors import ConfigError, StageError
from slmkit.eval.judge import parse_verdict, run_judge
from slmkit.eval.metrics import Metric
from slmkit.task import Parsed
from tests.conftest import write_project
from tests.eval.judge_stub import StubJudge, overlap_score

TASK_METRICS = {"adapter": {"exact_match": Metric(0.5, 0.1, 0.9, 6)}}
REFERENCE = "The parcel was lost in transit; a replacement ships today."
CANDIDATES = [
    REFERENCE,  # 5
    "The parcel was lost; a replacement ships.",  # overlap
    "GARBAGE answer",  # prose instead of JSON
    "FENCED the parcel was lost in transit",  # JSON in a code fence: still scored
    "OFFSCALE",  # score 9 on a 1-5 scale
    "DROP",  # the connection closes: transport
]


def _judge(url: str, **overrides) -> JudgeConfig:
    return JudgeConfig(endpoint=url, fields=["summary"], max_retries=1, timeout_s=10, **overrides)


def _run(settings: JudgeConfig, candidates=CANDIDATES, labels: Path | None = None):
    n = len(candidates)
    return run_judge(
        settings,
        task_metrics=TASK_METRICS,
        ids=[f"g{i}" for i in range(n)],
        inputs=["Where is my parcel?"] * n,
        gold=[{"summary": REFERENCE}] * n,
        predictions={"adapter": [Parsed(c, {"summary": c}, (), True) for c in candidates]},
        labels_path=labels,
        rounds=200,
    )


def test_scores_are_averaged_over_scored_items_and_unscorable_ones_are_counted_with_reasons():
    with StubJudge() as stub:
        outcome = _run(_judge(stub.url))
    summary = outcome.section["summary"]["adapter"]
    expected = [5, overlap_score(REFERENCE, CANDIDATES[1]), overlap_score(REFERENCE, CANDIDATES[3])]
    assert summary["n_items"] == 6 and summary["n_scored"] == 3 and summary["n_unscorable"] == 3
    assert summary["unscorable"] == {"out_of_scale": 1, "transport": 1, "unparseable": 1}
    mean = summary["mean_score"]
    assert mean["value"] == pytest.approx(sum(expected) / 3, abs=1e-4) and mean["n"] == 3
    assert mean["ci95"][0] <= mean["value"] <= mean["ci95"][1]
    items = {v["id"]: v for v in outcome.section["items"]["adapter"]}
    assert items["g0"] == {"id": "g0", "score": 5, "reason": "word overlap scores 5"}
    assert items["g2"]["unscorable"] == "unparseable" and "looks fine" in items["g2"]["reason"]
    assert items["g4"]["unscorable"] == "out_of_scale" and "score 9" in items["g4"]["reason"]
    assert items["g5"]["unscorable"] == "transport" and "2 tries" in items["g5"]["reason"]
    # Transport failures are retried (max_retries=1: two calls for DROP); bad answers are not.
    assert sum("DROP" in r["body"]["messages"][-1]["content"] for r in stub.requests) == 2
    assert len(stub.requests) == 7
    first = stub.requests[0]["body"]
    assert first["temperature"] == 0 and first["response_format"]["type"] == "json_schema"
    prompt = first["messages"][-1]["content"]
    assert "Rubric:" in prompt and "Where is my parcel?" in prompt and REFERENCE in prompt
    assert outcome.lines()[0].startswith("judge (adapter): mean score")


def test_a_server_without_structured_output_is_asked_again_without_it(monkeypatch):
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    with StubJudge(structured=False) as stub:
        outcome = _run(_judge(stub.url, api_key_env="JUDGE_KEY"), candidates=CANDIDATES[:2])
    assert outcome.section["summary"]["adapter"]["n_scored"] == 2
    assert "response_format" in stub.requests[0]["body"]
    assert sum("response_format" in r["body"] for r in stub.requests) <= 2  # both first calls may race
    assert len(stub.requests) - sum("response_format" in r["body"] for r in stub.requests) == 2
    assert {r["authorization"] for r in stub.requests} == {"Bearer sk-test"}


def test_agreement_with_human_scores_uses_quadratic_kappa(tmp_path):
    labels = tmp_path / "judge_labels.csv"
    # The judge gives g0 5, g1 its overlap score, g3 its overlap score; humans scored g0, g1, g3
    # one point apart at most, and g2 (unscorable: not compared) and a stale label for g1's old answer.
    s1, s3 = overlap_score(REFERENCE, CANDIDATES[1]), overlap_score(REFERENCE, CANDIDATES[3])
    labels.write_text(f"id,human_score,answer\ng0,5,\ng1,{s1},\ng3,{max(1, s3 - 1)},\ng2,1,\ng9,3,\n")
    with StubJudge() as stub:
        outcome = _run(_judge(stub.url), labels=labels)
    agreed = outcome.section["human_agreement"]
    assert agreed["n"] == 3 and agreed["stale_labels"] == 0
    assert 0 < agreed["quadratic_kappa"] <= 1 and agreed["exact_agreement"] == pytest.approx(2 / 3)
    labels.write_text("id,human_score,answer\ng0,5,an answer from an earlier run\n")
    with StubJudge() as stub:
        agreed = _run(_judge(stub.url), labels=labels).section["human_agreement"]
    assert agreed["n"] == 0 and agreed["stale_labels"] == 1 and math.isnan(agreed["quadratic_kappa"])


def test_judge_output_is_parsed_tolerantly_and_validated():
    assert parse_verdict("a", '```json\n{"score": 4, "reason": "ok"}\n```', (1, 5)).score == 4
    assert parse_verdict("a", 'Sure! {"score": 2, "reason": "thin"} Hope that helps.', (1, 5)).score == 2
    assert parse_verdict("a", '{"score": "4", "reason": "ok"}', (1, 5)).unscorable == "unparseable"
    assert parse_verdict("a", '{"score": true, "reason": "ok"}', (1, 5)).unscorable == "unparseable"
    assert parse_verdict("a", '{"score": 0, "reason": "ok"}', (1, 5)).unscorable == "out_of_scale"
    assert parse_verdict("a", "", (1, 5)).unscorable == "unparseable"


def test_judge_scores_are_never_reported_alone(tmp_path, tiny_model_dir):
    with pytest.raises(StageError, match="never alone"):
        run_judge(_judge("http://127.0.0.1:9/v1"), task_metrics={}, ids=[], inputs=[], gold=[], predictions={})
    project = write_project(
        tmp_path / "p",
        tiny_model_dir,
        rows=20,
        overrides={"eval.gates": ["judge_score >= 3"], "eval.judge": {"fields": ["product"]}},
    )
    with pytest.raises(ConfigError) as caught:
        load_config(project)
    message = str(caught.value)
    assert "judge_score' needs eval.judge.endpoint" in message and "cannot stand alone" in message
    project = write_project(
        tmp_path / "q",
        tiny_model_dir,
        rows=20,
        overrides={
            "eval.gates": ["schema_validity >= 0.5", "judge_score >= 3"],
            "eval.judge": {"endpoint": "http://127.0.0.1:8000/v1", "fields": ["summary"]},
        },
    )
    with pytest.raises(ConfigError, match=r"eval.judge.fields\[0\]: 'summary' is not a property"):
        load_config(project)


def test_slmkit_serve_as_the_judge_endpoint_answers_unscorable_json(tmp_path, tiny_model_dir):
    """A real slmkit endpoint answers with its task's JSON, not {"score", "reason"}: every item is
    counted unscorable with the reason, nothing is averaged."""
    from slmkit.serve import start_server
    from tests.serve.conftest import make_adapter, make_project, release_adapter

    config = make_project(tmp_path / "served", tiny_model_dir)
    release_adapter(config, make_adapter(tiny_model_dir, tmp_path / "adapter", seed=1), tiny_model_dir)
    with start_server(config) as handle:
        outcome = _run(_judge(handle.url, model=config.task.name), candidates=CANDIDATES[:3])
    summary = outcome.section["summary"]["adapter"]
    assert summary["n_scored"] == 0 and summary["n_unscorable"] == 3
    assert set(summary["unscorable"]) <= {"unparseable", "out_of_scale"}
    assert summary["mean_score"]["value"] is None or math.isnan(summary["mean_score"]["value"])
    assert all(v["reason"] for v in outcome.section["items"]["adapter"])


def test_a_judge_over_plain_http_to_another_machine_is_refused_unless_allowed(tmp_path, tiny_model_dir):
    def judge_at(endpoint: str, **extra) -> Path:
        return write_project(
            tmp_path / f"p{len(list(tmp_path.iterdir()))}",
            tiny_model_dir,
            rows=20,
            overrides={
                "eval.gates": ["schema_validity >= 0.5", "judge_score >= 3"],
                "eval.judge": {"endpoint": endpoint, "fields": ["product"], **extra},
            },
        )

    with pytest.raises(ConfigError, match=r"eval\.judge\.endpoint: http://judge\.internal:8000/v1 is plain http"):
        load_config(judge_at("http://judge.internal:8000/v1"))
    with pytest.raises(ConfigError, match=r"10\.0\.0\.7.*set eval\.judge\.allow_plain_http: true"):
        load_config(judge_at("http://10.0.0.7/v1"))
    for fine in ("https://judge.internal/v1", "http://127.0.0.1:8000/v1", "http://localhost:8000/v1"):
        assert load_config(judge_at(fine)).eval.judge.endpoint == fine
    assert load_config(judge_at("http://judge.internal/v1", allow_plain_http=True)).eval.judge.allow_plain_http
    # And at call time, for a config built in code without the file checks.
    with pytest.raises(StageError, match=r"refusing to send the judge's key and answers in clear"):
        _run(_judge("http://judge.internal:8000/v1"))
