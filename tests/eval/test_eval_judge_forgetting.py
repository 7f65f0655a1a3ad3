"""`run_eval` on the tiny model with a judge (the stub in judge_stub.py stands in for a judge model)
and the forgetting check: both sections land in report.json next to the task metrics."""

from __future__ import annotations

import json

import pytest

from slmkit.config import load_config
from slmkit.data import run_data_build
from slmkit.eval.run import run_eval
from slmkit.models import load_model, load_tokenizer, resolve_base_model
from slmkit.train import run_train
from tests.conftest import write_project
from tests.eval.judge_stub import StubJudge, overlap_score


def test_eval_reports_judge_scores_and_forgetting_next_to_task_metrics(tmp_path, tiny_model_dir):
    with StubJudge() as stub:
        project = write_project(
            tmp_path / "project",
            tiny_model_dir,
            overrides={
                "train.max_steps": 2,
                "train.batch_size": 4,
                "train.learning_rate": 0.01,
                "train.replay.max_new_tokens": 12,
                "eval.max_items": 6,
                "eval.max_new_tokens": 16,
                "eval.bootstrap_rounds": 200,
                "eval.gates": ["schema_validity >= 0.0", "judge_score >= 2"],
                "eval.judge": {"endpoint": stub.url, "fields": ["product"], "max_items": 4},
            },
        )
        config = load_config(project)
        run_data_build(config)
        run_train(config, progress=False, log=lambda _: None)
        result = run_eval(config, progress=False, log=lambda _: None)
    report = json.loads(result.report_path.read_text())

    judge = report["judge"]
    for side in ("base", "adapter"):
        summary = judge["summary"][side]
        assert summary["n_items"] == 4 and summary["n_scored"] + summary["n_unscorable"] == 4
        assert len(judge["items"][side]) == 4 and all(v["reason"] for v in judge["items"][side])
        assert "exact_match" in report["metrics"][side]  # the task metrics stand next to the judge's
        assert report["metrics"][side]["judge_score"]["n"] == summary["n_scored"]
    # The stub scores by rule: each judged side, in turn, gets exactly the scores the rule gives the
    # prompts it received, and the gate compares the adapter's mean with its threshold.
    sides = list(judge["items"])
    assert "adapter" in sides and len(stub.requests) == 4 * len(sides)
    rule = [_stub_score(r["body"]["messages"][-1]["content"]) for r in stub.requests]
    means = {}
    for k, side in enumerate(sides):
        scores = rule[4 * k : 4 * k + 4]
        assert sorted(v["score"] for v in judge["items"][side]) == sorted(scores)
        means[side] = sum(scores) / 4
        assert report["metrics"][side]["judge_score"]["value"] == pytest.approx(means[side])
    [gate] = [g for g in report["gates"] if g["metric"] == "judge_score"]
    assert gate["observed"] == pytest.approx(means["adapter"]) and gate["threshold"] == 2
    assert gate["passed"] is (means["adapter"] >= 2)

    forgetting = report["forgetting"]
    assert forgetting["prompts"] == 12 and forgetting["answer_tokens"] > 0 and forgetting["text_tokens"] > 500
    base, adapter = forgetting["base"], forgetting["adapter"]
    assert set(base) == set(adapter) == {"nll", "token_agreement", "perplexity"}
    # The trained adapter moved: the base's answers and the general text score differently under it.
    # (The tiny model's answers are runs of newlines that re-tokenize differently, so its agreement
    # with its own answers is not 1 here; the next test checks base against base exactly.)
    assert adapter["nll"] != base["nll"] and adapter["perplexity"] != base["perplexity"]
    assert 0.0 <= adapter["token_agreement"] <= 1.0
    lines = "\n".join(result.summary_lines())
    assert "forgetting on 12 general prompts: agreement with the base's answers" in lines
    assert "general-text perplexity" in lines
    assert "judge (adapter): mean score" in lines


def test_the_base_model_agrees_with_itself_on_the_general_prompts(tmp_path, tiny_model_dir):
    """base vs base: the check on an 'adapter' that is the base itself moves nothing."""
    from peft import LoraConfig, get_peft_model

    from slmkit.eval.forgetting import check_forgetting

    config = load_config(write_project(tmp_path / "p", tiny_model_dir, rows=20))
    config.train.replay.max_new_tokens = 12
    ref = resolve_base_model(str(tiny_model_dir))
    # A fresh LoRA adapter: lora_B starts at zero, so merged it is the base exactly.
    identity = get_peft_model(load_model(ref), LoraConfig(r=2, target_modules="all-linear"))
    identity.save_pretrained(tmp_path / "identity")
    checked = check_forgetting(config, ref, load_tokenizer(ref), tmp_path / "identity", "float32")
    assert checked.drift["adapter"]["token_agreement"] == checked.drift["base"]["token_agreement"]
    assert checked.drift["adapter"]["nll"] == checked.drift["base"]["nll"]
    assert checked.perplexity["adapter"] == checked.perplexity["base"]


def _stub_score(prompt: str) -> int:
    reference = prompt.split("Reference answer:\n", 1)[1].split("\n\nCandidate answer:\n", 1)[0]
    return overlap_score(reference, prompt.split("\n\nCandidate answer:\n", 1)[1])
