"""Releases built by hand for the serving tests: LoRA adapters on the tiny model, in a real registry."""

from __future__ import annotations

import urllib.request
from pathlib import Path
from typing import Any

import pytest

from slmkit.config import ProjectConfig, load_config
from slmkit.models import resolve_base_model
from slmkit.registry import Registry, Release
from tests.conftest import write_project

MAX_NEW_TOKENS = 12
MAX_RETRIES = 1


def make_adapter(base_dir: Path, out_dir: Path, *, seed: int) -> Path:
    """A LoRA adapter (r=4, all linear layers) with random non-zero weights, so it changes the model."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_" in name:  # lora_B starts at zero: without this the adapter would be a no-op
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    peft_model.save_pretrained(out_dir)
    return out_dir


def make_project(root: Path, base_dir: Path, **overrides: Any) -> ProjectConfig:
    """The example project on the tiny model, with short answers so the suite stays fast."""
    # Unconstrained: the tiny model's garbage then exercises the guard (test_constrained.py turns it on).
    settings = {
        "serve.max_new_tokens": MAX_NEW_TOKENS,
        "serve.max_retries": MAX_RETRIES,
        "serve.constrained": False,
        **overrides,
    }
    return load_config(write_project(root, base_dir, rows=20, overrides=settings))


def release_adapter(
    config: ProjectConfig,
    adapter_dir: Path,
    base_dir: Path,
    *,
    alias: str | None = "production",
    recorded_config: dict[str, Any] | None = None,
    base_model: dict[str, Any] | None = None,
    dataset: Any = None,
    name: str | None = None,
    eval_report_digest: str = "0" * 64,
) -> Release:
    """Store the adapter and record a release of it, as `slmkit release` would after a passing eval."""
    registry = Registry(config.state_dir)
    try:
        digest = registry.store.put_dir(adapter_dir)
        return registry.create_release(
            name=name or config.task.name,
            run_id=f"run-{digest[:8]}",
            adapter_digest=digest,
            base_model=base_model or resolve_base_model(str(base_dir)).record(),
            dataset_version=dataset.version if dataset else "ds-test",
            gold_hash=dataset.gold_hash if dataset else "0" * 64,
            eval_report_digest=eval_report_digest,
            config=recorded_config or config.resolved(),
            note="test release",
            alias=alias,
        )
    finally:
        registry.close()


@pytest.fixture(scope="session")
def adapters(tmp_path_factory, tiny_model_dir) -> list[Path]:
    """Two different adapters for the tiny model."""
    root = tmp_path_factory.mktemp("adapters")
    return [make_adapter(tiny_model_dir, root / f"adapter-{seed}", seed=seed) for seed in (1, 2)]


def scrape(api_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """/metrics parsed by prometheus_client: {(sample name, labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(api_url.removesuffix("/v1") + "/metrics", timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric(samples: dict, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series does not exist yet (a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)
