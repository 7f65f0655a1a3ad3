"""Serving chooses the label as eval did: by label scoring, refused under the threshold eval chose."""

from __future__ import annotations

import json

import openai

from slmkit.registry import Registry
from slmkit.serve import start_server
from slmkit.task import Task
from tests.serve.conftest import make_project, release_adapter

TICKETS = ["My order ORD-123456 never arrived", "refund my headphones please", "The app crashes on login"]


def test_served_labels_are_scored_and_refused_under_the_recorded_threshold(tmp_path, tiny_model_dir, adapters):
    config = make_project(tmp_path / "p", tiny_model_dir, **{"serve.constrained": True, "serve.max_new_tokens": 80})
    task = Task.from_config(config)
    release_adapter(config, adapters[0], tiny_model_dir)  # no eval report: no threshold
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"decoding": {"label_scoring": True, "refusal_threshold": 1.01}}))
    with Registry(config.state_dir) as registry:
        digest = registry.store.put_file(report)
    release_adapter(config, adapters[0], tiny_model_dir, alias="strict", eval_report_digest=digest)
    refusal = task.refusal_output
    with start_server(config) as handle:
        client = openai.OpenAI(base_url=handle.url, api_key="x", max_retries=0)
        for text in TICKETS:
            messages = [{"role": "user", "content": text}]
            plain = client.chat.completions.create(model="support-tickets@1", messages=messages)
            answer = json.loads(plain.choices[0].message.content)
            assert task.validate(answer) == [] and plain.model_extra["slmkit"]["valid"] is True
            # Over a threshold no label probability reaches, every answer is the task's refusal.
            strict = client.chat.completions.create(model="support-tickets@strict", messages=messages)
            assert json.loads(strict.choices[0].message.content) == refusal
            assert strict.model_extra["slmkit"]["refused"] is True
