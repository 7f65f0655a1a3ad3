"""`slmkit synth` through the CLI, with a real `slmkit serve` as its teacher (real HTTP on a free port).

The teacher is a release of a "ticket writer" task on the tiny random model: the server decodes
its answers under the writer's schema ({"subject", "body"}), which is the shape synth asks for,
so every reply is valid JSON whose text is noise. That is the point of the test: the whole path
(plan, HTTP calls through the official client, journal, checks, dataset version) runs on a real
server, and a reply that is valid JSON is still only kept if it passes every check; the noise
that does pass shows why the judge and the real-row floor exist.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from slmkit.config import load_config
from slmkit.data import open_dataset, run_data_build
from slmkit.registry import Registry
from slmkit.serve import start_server
from tests.conftest import read_jsonl, write_project
from tests.serve.conftest import make_adapter, release_adapter
from tests.test_cli import run_cli as cli

WRITER_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["subject", "body"],
    "properties": {"subject": {"type": "string", "maxLength": 24}, "body": {"type": "string", "maxLength": 80}},
}


def run_cli(capsys, *args: str) -> tuple[int, str]:
    code, out, err = cli(capsys, *args)
    return code, out + err


def writer_project(root: Path, base: Path):
    """A project whose released task writes a ticket's subject and body: the teacher."""
    (root / "data").mkdir(parents=True)
    (root / "data" / "unused.jsonl").write_text("", encoding="utf-8")
    config = {
        "base_model": str(base),
        "task": {
            "name": "ticket-writer",
            "input_fields": ["request"],
            "system_prompt": "You write support tickets.",
            "output_schema": WRITER_SCHEMA,
        },
        "data": {"sources": [{"path": "data/unused.jsonl"}], "split": {"stratify": False}},
        "serve": {"constrained": True, "max_new_tokens": 64, "max_retries": 0},
    }
    (root / "slmkit.yaml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return load_config(root)


def test_synth_asks_a_real_slmkit_serve_and_checks_every_reply(tmp_path, tiny_model_dir, capsys):
    writer = writer_project(tmp_path / "writer", tiny_model_dir)
    release_adapter(writer, make_adapter(tiny_model_dir, tmp_path / "adapter", seed=3), tiny_model_dir)
    with start_server(writer) as teacher:
        root = write_project(
            tmp_path / "student",
            tiny_model_dir,
            rows=30,
            overrides={
                "synth.teacher.endpoint": teacher.url,
                "synth.teacher.model": "ticket-writer",
                "synth.teacher.max_tokens": 64,
                "synth.kinds": ["paraphrase", "out_of_scope"],
                "synth.per_seed": 1,
                "synth.out_of_scope": 3,
                "synth.semantic": False,
                "synth.min_real_share": 0.0,
            },
        )
        config = load_config(root)
        parent = run_data_build(config)
        code, out = run_cli(capsys, "synth", "-p", str(root), "--dry-run")
        journal_path = config.state_dir / "synth" / "journal.jsonl"
        assert code == 0 and "dry run: nothing asked" in out
        assert not journal_path.exists() or journal_path.read_text() == ""
        planned = parent.counts["train"] + 3

        code, out = run_cli(capsys, "synth", "-p", str(root))
        assert code == 0, out
        assert f"plan from {parent.version}: {planned} teacher requests" in out
        assert f"before: 0 already in the journal (free), {planned} new calls" in out
        assert f"teacher: {planned} new calls" in out and "0 failed" in out
        journal = read_jsonl(journal_path)
        assert len(journal) == planned
        for reply in journal:  # what the server answered: JSON in the writer's schema, usage counted
            value = json.loads(reply["text"])
            assert set(value) == {"subject", "body"} and reply["completion_tokens"] > 0
        registry = Registry(config.state_dir)
        child = open_dataset(config, registry)  # the latest version: the one synth wrote
        registry.close()
        version, dataset = child.version, child.path
        assert child.manifest["synthetic"]["parent"] == parent.version
        rejects = read_jsonl(dataset / "synthetic_rejects.jsonl")
        synthetic = [row for row in read_jsonl(dataset / "train.jsonl") if "synthetic" in row]
        assert len(synthetic) + len(rejects) == planned
        assert all(r["reason"] and r["synthetic"]["teacher"]["model"] == "ticket-writer" for r in rejects)
        # Noise from a random model loses the seed's order ids: a paraphrase that dropped one is ungrounded.
        with_ids = [r for r in rejects if r["kind"] == "ungrounded"]
        assert with_ids and all("is not in the new request" in r["reason"] for r in with_ids)
        for row in synthetic:
            provenance = row["synthetic"]
            assert provenance["teacher"]["model"] == "ticket-writer" and len(provenance["prompt_sha256"]) == 64
        assert f"dataset {version}" in out

        # Run again: every reply comes from the journal and the server is not asked.
        served_before = teacher.service.engine.stats()
        code, again = run_cli(capsys, "synth", "-p", str(root))
        assert code == 0 and f"before: {planned} already in the journal (free), 0 new calls" in again
        assert "teacher: 0 new calls" in again and f"{planned} replies from the journal" in again
        assert f"dataset {version}" in again
        assert teacher.service.engine.stats() == served_before
