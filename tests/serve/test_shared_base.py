"""serve.merge_adapters: false — one base model in memory, every release a named adapter on it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import openai

from slmkit.registry import Registry
from slmkit.serve import start_server
from slmkit.serve.releases import SharedBaseBackend, TransformersBackend, check_release
from tests.serve.conftest import make_project, release_adapter

NAME = "support-tickets"
PROMPTS = ["Order ORD-123456 never arrived", "refund please", "the app crashes"]


def test_a_shared_base_answers_each_release_as_its_merged_copy_would(tmp_path, tiny_model_dir, adapters) -> None:
    config = make_project(tmp_path / "p", tiny_model_dir, **{"eval.precision": "fp32"})
    releases = [release_adapter(config, adapter, tiny_model_dir) for adapter in adapters]
    checked = [check_release(r, state_dir=config.state_dir, root=config.root) for r in releases]
    task = checked[0].spec.task
    prompts = [task.prompt_text(checked[0].tokenizer, text) for text in PROMPTS]

    def texts(generator) -> list[str]:
        out = generator.generate(prompts, max_new_tokens=10, temperature=0.0, seed=0, schema=None)
        return [g.text for g in out]

    shared = SharedBaseBackend()
    first, second = (shared.open(c) for c in checked)
    merged = [texts(TransformersBackend().open(c)) for c in checked]
    # Interleaved on purpose: each batch must run on its own adapter, whichever was active before.
    assert texts(first) == merged[0] and texts(second) == merged[1] and texts(first) == merged[0]
    assert merged[0] != merged[1], "the two adapters must answer differently for this test to mean anything"
    (base,) = shared.health()["shared_bases"]
    assert base["adapters"] == sorted([f"{NAME}@1", f"{NAME}@2"])

    second.close()  # evicted: the adapter goes, the base stays for the first
    (base,) = shared.health()["shared_bases"]
    assert base["adapters"] == [f"{NAME}@1"] and texts(first) == merged[0]


def test_the_server_serves_two_versions_from_one_base_at_once(tmp_path, tiny_model_dir, adapters) -> None:
    config = make_project(tmp_path / "p", tiny_model_dir, **{"serve.merge_adapters": False})
    for adapter in adapters:
        release_adapter(config, adapter, tiny_model_dir)
    with start_server(config) as handle:
        client = openai.OpenAI(base_url=handle.url, api_key="x", max_retries=0)

        def ask(model: str) -> str:
            reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
            return reply.model

        asked = [f"{NAME}@1", f"{NAME}@2", NAME] * 4
        with ThreadPoolExecutor(max_workers=12) as pool:
            answered = list(pool.map(ask, asked))
        assert answered == [f"{NAME}@2" if m == NAME else m for m in asked]  # production is version 2
        (base,) = handle.service.health()["backend"]["shared_bases"]  # one base model for both versions
        assert base["adapters"] == [f"{NAME}@1", f"{NAME}@2"]
    registry = Registry(config.state_dir)
    assert len(registry.list_releases(NAME)) == 2
    registry.close()
