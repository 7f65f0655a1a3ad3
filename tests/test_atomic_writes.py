"""A crash mid-write never leaves a torn file where slmkit promises a whole one.

Each test kills a real slmkit process with SIGKILL (no clean-up runs) while it writes one file
(tests/killwrite.py), then reads what is on disk: the previous file, or none, never a mixture.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from slmkit.errors import StageError
from slmkit.eval.run import run_eval
from slmkit.models import resolve_base_model
from slmkit.registry import Registry
from slmkit.registry.store import hash_dir
from slmkit.train.export import INDEX, MANIFEST, run_export
from tests.conftest import write_project
from tests.killwrite import REPO, run_killed
from tests.models.test_export import FAST_TRAINING, release_project

KILLED = -signal.SIGKILL


@pytest.fixture(scope="module")
def released(tmp_path_factory, tiny_model_dir):
    """A tiny project trained, evaluated and released once: (config, release)."""
    return release_project(
        write_project(tmp_path_factory.mktemp("atomic") / "project", tiny_model_dir, overrides=FAST_TRAINING)
    )


def whole_or_absent(path: Path) -> bool:
    """The file is missing, or holds complete JSON."""
    if not path.exists():
        return True
    try:
        json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return True


def new_run(config, before: set[str]) -> Path:
    (run_id,) = {d.name for d in (config.state_dir / "runs").iterdir()} - before
    return config.state_dir / "runs" / run_id


@pytest.mark.parametrize("name", ["config.json", "run.json"])
def test_a_training_run_killed_while_writing_its_record_leaves_no_torn_file(released, name):
    config, _ = released
    before = {d.name for d in (config.state_dir / "runs").iterdir()}
    done = run_killed(["train", "-p", str(config.root), "-q"], writing=name, after_bytes=64)
    assert done.returncode == KILLED, done.stderr[-2000:]
    run_dir = new_run(config, before)
    assert whole_or_absent(run_dir / name), f"{name} was left half written"
    if name == "run.json":  # run.json is the completeness marker: without it the run reads unfinished
        assert not (run_dir / name).exists()
        registry = Registry(config.state_dir)
        assert {r.run_id: r.status for r in registry.list_runs(config.task.name)}[run_dir.name] == "running"
        registry.close()


def test_an_eval_killed_while_writing_its_report_keeps_the_previous_report(released):
    config, _ = released
    first = run_eval(config, progress=False, log=lambda _: None)
    kept = first.report_path.read_bytes()
    done = run_killed(["eval", "-p", str(config.root)], writing="report.json", after_bytes=200)
    assert done.returncode == KILLED, done.stderr[-2000:]
    assert first.report_path.read_bytes() == kept


def test_a_weight_hash_memo_cut_short_is_hashed_again(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("SLMKIT_CACHE", str(tmp_path / "clean-cache"))
    truth = resolve_base_model(str(tiny_model_dir)).sha256

    monkeypatch.setenv("SLMKIT_CACHE", str(tmp_path / "cache"))
    code = "import sys; from slmkit.models import resolve_base_model; resolve_base_model(sys.argv[1])"
    done = run_killed([str(tiny_model_dir)], writing="*.txt", after_bytes=10, code=code)
    assert done.returncode == KILLED, done.stderr[-2000:]
    assert resolve_base_model(str(tiny_model_dir)).sha256 == truth  # the killed write is not trusted
    (memo,) = (tmp_path / "cache" / "hashes").glob("*.txt")
    assert memo.read_text() == truth  # and the hash written afterwards is whole

    memo.write_text("")  # an empty memo (a crash on a file system without rename) is no digest either
    assert resolve_base_model(str(tiny_model_dir)).sha256 == truth


def test_replacing_a_directory_export_killed_midway_leaves_a_whole_export(released, tmp_path):
    config, rel = released
    out = tmp_path / "out"
    (first,) = run_export(config, fmt="peft", out_dir=out, verify=False, log=lambda _: None).exports
    name = first.path.name
    args = ["export", rel.ref, "--format", "peft", "--no-verify", "--out", str(out), "-p", str(config.root)]
    # Killed right after the first tree is deleted while the old export is being replaced.
    done = run_killed(args, removing=name)
    assert done.returncode == KILLED, done.stderr[-2000:]
    assert (out / name / MANIFEST).exists() and (out / name / "adapter_model.safetensors").exists()
    assert hash_dir(out / name) == first.digest  # the same bytes as the export that was checked


def test_a_corrupt_export_index_is_an_error_not_an_empty_index(released, tmp_path):
    config, rel = released
    out = tmp_path / "out"
    out.mkdir()
    torn = '{"support-tickets-v1-gguf-f16.gguf": {"release": "support-tickets@1", "sha'
    (out / INDEX).write_text(torn)
    refused = r"(?s)exports\.json is not a readable export index .*repair it or move it aside"
    with pytest.raises(StageError, match=refused):
        run_export(config, fmt="peft", out_dir=out, verify=False, log=lambda _: None)
    assert (out / INDEX).read_text() == torn  # nothing earlier was dropped
    assert not (out / f"{rel.name}-v{rel.version}-peft").exists()  # refused before building anything


def test_exports_written_into_one_directory_at_once_all_stay_in_the_index(tmp_path):
    """Four processes each add 25 exports to one index at the same time: all 100 are kept."""
    script = textwrap.dedent(
        """
        import sys
        from pathlib import Path
        from types import SimpleNamespace
        from slmkit.train.export import Exported, _write_index

        who, out = sys.argv[1], Path(sys.argv[2])
        for i in range(25):
            done = Exported("peft", "none", out / f"{who}-{i}", "0" * 64, 1, 0.0, None)
            _write_index(out, [done], SimpleNamespace(ref="support-tickets@1"))
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    writers = [
        subprocess.Popen([sys.executable, "-c", script, f"w{w}", str(tmp_path)], env=env, stderr=subprocess.PIPE)
        for w in range(4)
    ]
    errors = [w.communicate(timeout=120)[1].decode() for w in writers]
    assert [w.returncode for w in writers] == [0, 0, 0, 0], errors
    index = json.loads((tmp_path / INDEX).read_text())
    assert sorted(index) == sorted(f"w{w}-{i}" for w in range(4) for i in range(25))
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_directory_swap_replaces_a_tree_in_one_step(tmp_path):
    from slmkit import atomic

    old, new = tmp_path / "export", tmp_path / ".export.new"
    old.mkdir()
    (old / "a.txt").write_text("old")
    new.mkdir()
    (new / "b.txt").write_text("new")
    atomic.replace_dir(new, old)
    assert [p.name for p in old.iterdir()] == ["b.txt"] and not new.exists()
