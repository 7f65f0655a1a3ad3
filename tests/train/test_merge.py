"""A merged model is a plain transformers directory that answers exactly like base + adapter."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from slmkit.config import load_config
from slmkit.data import run_data_build
from slmkit.models import load_model, load_tokenizer, resolve_base_model
from slmkit.train import run_train
from slmkit.train.merge import MANIFEST, merge_adapter, verify_merge
from tests.conftest import write_project
from tests.greedy import greedy_ids
from tests.test_cli import run_cli

PROMPTS = [
    "Subject: charged twice\n\nMy card was charged twice for order ORD-123456.",
    "Subject: parcel\n\nWhere is my PulseBuds Pro parcel? Tracking has not moved in two weeks.",
    "Subject: hi\n\nhello",
    "Subject: login\n\nI cannot log in to my account since the password reset.",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    """A tiny project with one run whose adapter moved far enough to change greedy answers."""
    project = write_project(
        tmp_path_factory.mktemp("merge") / "project",
        tiny_model_dir,
        overrides={
            "train.max_steps": 6,
            "train.batch_size": 4,
            "train.eval_every": 6,
            "train.learning_rate": 0.05,
            "eval.max_items": 8,
            "eval.max_new_tokens": 16,
            "eval.batch_size": 4,
        },
    )
    config = load_config(project)
    run_data_build(config)
    result = run_train(config, progress=False)
    return config, result


REPO = Path(__file__).resolve().parents[2]
# A fresh interpreter where importing peft fails: the merged directory must stand on its own.
# Both processes decode through tests/greedy.py: greedy, a fixed number of tokens, plain transformers.
_PLAIN_LOAD = """
import json, sys
sys.modules["peft"] = None
sys.path.insert(0, sys.argv[4])
from tests.greedy import greedy_ids
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
prompts = json.loads(sys.argv[3])
ids = greedy_ids(model, tokenizer, prompts, 12)
json.dump({"ids": ids, "template": tokenizer.chat_template}, open(sys.argv[2], "w"))
"""


def test_merged_directory_loads_without_peft_and_gives_the_same_greedy_tokens(trained, tmp_path):
    config, result = trained
    base = resolve_base_model(str(config.base_model), config.root)
    out = merge_adapter(base, result.adapter_dir, tmp_path / "merged", "float32")
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "generation_config.json", MANIFEST} <= names
    assert not any(name.startswith("adapter") for name in names)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["dtype"] == "float32" and manifest["base_model"]["sha256"] == base.sha256

    report = tmp_path / "plain.json"
    subprocess.run(
        [sys.executable, "-c", _PLAIN_LOAD, str(out), str(report), json.dumps(PROMPTS), str(REPO)],
        check=True,
        capture_output=True,
        text=True,
    )
    plain = json.loads(report.read_text())
    tokenizer = load_tokenizer(base)
    assert plain["template"] == tokenizer.chat_template

    unmerged = load_model(base, adapter=result.adapter_dir, merge=False)
    expected = greedy_ids(unmerged, tokenizer, PROMPTS, 12)
    assert plain["ids"] == expected
    # The adapter must matter, or equal tokens would prove nothing.
    assert greedy_ids(load_model(base), tokenizer, PROMPTS, 12) != expected


def test_verify_merge_finds_full_agreement_in_fp32_and_records_it(trained):
    config, result = trained
    report = verify_merge(config, result.run_id, log=lambda _: None)
    assert report["items"] == 8 and report["prompts_identical"]
    assert report["identical_text"] == 8 and report["text_agreement"] == 1.0
    assert report["identical_json"] == 8 and report["json_agreement"] == 1.0
    assert report["first_token_agreement"] == report["logit_items"] == 4
    assert report["max_abs_logit_diff"] < 1e-4 < report["max_abs_logit"]
    recorded = json.loads((result.run_dir / "merge.json").read_text())
    assert recorded["text_agreement"] == 1.0 and recorded["run_id"] == result.run_id


def test_a_merge_of_the_wrong_adapter_is_caught(trained, tmp_path):
    from peft import LoraConfig, get_peft_model

    config, result = trained
    base = resolve_base_model(str(config.base_model), config.root)
    other = get_peft_model(load_model(base), LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    other.save_pretrained(str(tmp_path / "other-adapter"))
    wrong = merge_adapter(base, tmp_path / "other-adapter", tmp_path / "wrong", "float32")

    report = verify_merge(config, result.run_id, out_dir=wrong, log=lambda _: None)
    assert report["text_agreement"] < 1.0 and report["disagreements"]
    assert report["max_abs_logit_diff"] > 1e-2


def test_slmkit_merge_writes_the_model_and_prints_the_agreement(trained, tmp_path, capsys):
    config, result = trained
    out = tmp_path / "served"
    code, stdout, err = run_cli(
        capsys, "merge", result.run_id, "-p", str(config.root), "--out", str(out), "--verify", "--limit", "3"
    )
    assert code == 0, err
    assert "identical answer text: 3/3 (100.0%)" in stdout and "identical parsed JSON: 3/3" in stdout
    assert (out / MANIFEST).exists() and (out / "model.safetensors").exists()
    assert json.loads((result.run_dir / "merge.json").read_text())["items"] == 3

    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "merge", "-p", str(config.root), "--out", str(tmp_path / "precious"))
    assert code == 5 and "refusing to overwrite" in err and "Traceback" not in err
    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"
