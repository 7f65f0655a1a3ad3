"""Several processes at once, and a process killed mid-write: the registry stays whole.

Workers run under the `spawn` start method (a fresh interpreter, as two `slmkit` commands would
be), so they are module-level functions taking only picklable arguments.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from slmkit.registry import Registry, hash_dir

RELEASE: dict[str, Any] = {
    "adapter_digest": "a" * 64,
    "base_model": {"spec": "smollm2-135m-instruct"},
    "dataset_version": "ds-1",
    "gold_hash": "g" * 64,
    "eval_report_digest": "e" * 64,
    "config": {},
}


def _release_many(home: str, worker: str, count: int, start: Any) -> None:
    start.wait()  # both open the fresh registry (and race to migrate it) at the same moment
    with Registry(Path(home)) as registry:
        for i in range(count):
            registry.create_release(name="tickets", run_id=f"{worker}-{i}", actor=worker, **RELEASE)


def _release_forever(home: str) -> None:
    with Registry(Path(home)) as registry:
        while True:
            registry.create_release(name="tickets", run_id="loop", **RELEASE)


def _put_dir_slowly(home: str, src: str, copying: str) -> None:
    # Hold the copy open long enough to be killed inside it: the first file copied signals,
    # then the copy stalls.
    import shutil

    real_copyfile = shutil.copyfile

    def stalling_copyfile(a: str, b: str, **kw: object) -> str:
        result = real_copyfile(a, b)
        Path(copying).touch()
        time.sleep(60)
        return result

    shutil.copyfile = stalling_copyfile  # type: ignore[assignment]
    Registry(Path(home)).store.put_dir(Path(src))


def _wait_for(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def test_two_processes_releasing_at_once_get_unique_consecutive_versions(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    home = tmp_path / ".slmkit"
    start = ctx.Barrier(2)
    workers = [ctx.Process(target=_release_many, args=(str(home), name, 10, start)) for name in ("alice", "bob")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0], "a worker failed; its traceback is in the captured stderr"

    with Registry(home) as registry:
        releases = registry.list_releases("tickets")
        assert [r.version for r in releases] == list(range(1, 21))
        assert sorted(r.created_by for r in releases).count("alice") == 10
        # Each release read the alias and moved it in one transaction, so the parent chain
        # has no gaps and no two releases claim the same parent.
        assert [r.parent_version for r in releases] == [None, *range(1, 20)]
        assert registry.aliases("tickets") == {"production": 20}
        assert len([e for e in registry.audit_log("tickets", limit=1000) if e.action == "release"]) == 20


def test_a_process_killed_while_releasing_leaves_only_whole_releases(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    home = tmp_path / ".slmkit"
    worker = ctx.Process(target=_release_forever, args=(str(home),))
    worker.start()
    try:
        _wait_for(lambda: _release_count(home) >= 5, "5 releases")
    finally:
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        worker.join()

    with Registry(home) as registry:
        releases = registry.list_releases("tickets")
        top = releases[-1].version
        assert [r.version for r in releases] == list(range(1, top + 1))
        assert registry.aliases("tickets") == {"production": top}, "the alias moved with the last release, or not"
        audited = {e.detail["version"] for e in registry.audit_log("tickets", limit=10_000) if e.action == "release"}
        assert audited == set(range(1, top + 1))
        assert registry.create_release(name="tickets", run_id="after", **RELEASE).version == top + 1


def _release_count(home: Path) -> int:
    if not (home / "registry.db").exists():
        return 0
    conn = sqlite3.connect(home / "registry.db", timeout=30)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM releases").fetchone()[0])
    except sqlite3.OperationalError:  # the worker is still creating the schema
        return 0
    finally:
        conn.close()


def test_a_process_killed_mid_put_dir_leaves_no_partial_object(tmp_path: Path) -> None:
    src = tmp_path / "adapter"
    src.mkdir()
    (src / "adapter_model.safetensors").write_bytes(os.urandom(4 << 20))
    (src / "adapter_config.json").write_text('{"r": 8}')
    home = tmp_path / ".slmkit"
    with Registry(home) as registry:
        digest = hash_dir(src)
        registry.record_artifact(digest, "adapter", 4 << 20)  # recorded before the copy lands
    copying = tmp_path / "copying"

    ctx = multiprocessing.get_context("spawn")
    worker = ctx.Process(target=_put_dir_slowly, args=(str(home), str(src), str(copying)))
    worker.start()
    try:
        _wait_for(copying.exists, "the worker to start copying")
    finally:
        assert worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        worker.join()
    assert worker.exitcode == -signal.SIGKILL

    with Registry(home) as registry:
        assert not registry.store.exists(digest), "a half-copied tree must not be visible under its digest"
        assert list((home / "objects" / "tmp").iterdir()), "the kill should have left a temp entry behind"
        assert registry.verify() and "missing" in registry.verify()[0]
        assert registry.store.gc_tmp(older_than_s=0) == 1
        assert registry.store.put_dir(src) == digest
        assert registry.verify() == []
        assert not list((home / "objects" / "tmp").iterdir())
