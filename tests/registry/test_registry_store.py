"""The object store: content-addressed, idempotent, atomic, and able to tell when an object changed."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from slmkit.errors import RegistryError
from slmkit.registry import ObjectStore, hash_dir, hash_file


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


ADAPTER = {"adapter_config.json": b'{"r": 8}', "adapter_model.safetensors": b"\x00" * 4096, "sub/notes.txt": b"hi"}


def test_put_file_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects")
    src = tmp_path / "report.json"
    src.write_bytes(b'{"passed": true}')

    digest = store.put_file(src)

    assert digest == hashlib.sha256(b'{"passed": true}').hexdigest() == hash_file(src)
    stored = store.path(digest)
    assert stored == tmp_path / "objects" / "sha256" / digest[:2] / digest
    assert stored.read_bytes() == src.read_bytes()
    before = stored.stat().st_mtime_ns
    time.sleep(0.01)
    assert store.put_file(src) == digest
    assert stored.stat().st_mtime_ns == before, "storing the same bytes again must not rewrite the object"
    assert list((tmp_path / "objects" / "tmp").iterdir()) == []


def test_one_changed_byte_changes_the_digest(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects")
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"\x00" * 3_000_000)  # spans several 1 MiB chunks
    b.write_bytes(b"\x00" * 2_999_999 + b"\x01")
    assert store.put_file(a) != store.put_file(b)

    one = _tree(tmp_path / "one", ADAPTER)
    two = _tree(tmp_path / "two", {**ADAPTER, "sub/notes.txt": b"ho"})
    assert store.put_dir(one) != store.put_dir(two)


def test_put_dir_digest_is_the_documented_tree_hash(tmp_path: Path) -> None:
    src = _tree(tmp_path / "adapter", ADAPTER)
    lines = sorted(f"{rel}\t{hashlib.sha256(data).hexdigest()}\t{len(data)}\n" for rel, data in ADAPTER.items())
    expected = hashlib.sha256("".join(lines).encode()).hexdigest()

    store = ObjectStore(tmp_path / "objects")
    digest = store.put_dir(src)

    assert digest == expected == hash_dir(src)
    stored = store.path(digest)
    assert {p.relative_to(stored).as_posix(): p.read_bytes() for p in stored.rglob("*") if p.is_file()} == ADAPTER
    assert store.put_dir(src) == digest  # idempotent
    assert store.verify(digest) == []


def test_put_dir_digest_depends_on_names_not_on_where_the_tree_lives(tmp_path: Path) -> None:
    here = _tree(tmp_path / "here", ADAPTER)
    there = _tree(tmp_path / "elsewhere" / "deeper", ADAPTER)
    assert hash_dir(here) == hash_dir(there)
    (there / "sub" / "notes.txt").rename(there / "sub" / "renamed.txt")
    assert hash_dir(here) != hash_dir(there)


def test_put_dir_refuses_symlinks_and_stores_nothing(tmp_path: Path) -> None:
    src = _tree(tmp_path / "adapter", ADAPTER)
    (src / "link.bin").symlink_to(src / "adapter_model.safetensors")
    store = ObjectStore(tmp_path / "objects")
    with pytest.raises(RegistryError, match="symbolic link"):
        store.put_dir(src)
    assert not (tmp_path / "objects" / "sha256").exists()


def test_missing_object_error_names_the_digest(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects")
    digest = "ab" * 32
    assert not store.exists(digest)
    with pytest.raises(RegistryError, match=digest):
        store.path(digest)


def test_a_malformed_digest_never_becomes_a_path(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects")
    with pytest.raises(RegistryError, match="not a sha256 digest"):
        store.path("../../etc/passwd")
    assert store.verify("nope") and "not a sha256 digest" in store.verify("nope")[0]


def test_verify_detects_altered_and_deleted_objects(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects")
    src = tmp_path / "report.json"
    src.write_text("{}")
    file_digest = store.put_file(src)
    dir_digest = store.put_dir(_tree(tmp_path / "adapter", ADAPTER))
    assert store.verify(file_digest) == [] and store.verify(dir_digest) == []

    store.path(file_digest).write_text('{"tampered": 1}')
    (store.path(dir_digest) / "sub" / "notes.txt").write_bytes(b"HI")
    assert "altered" in store.verify(file_digest)[0]
    assert "altered" in store.verify(dir_digest)[0]

    extra = tmp_path / "other.json"
    extra.write_text("[]")
    extra_digest = store.put_file(extra)
    store.path(extra_digest).unlink()
    assert "missing" in store.verify(extra_digest)[0]

    added_to = store.put_dir(_tree(tmp_path / "adapter2", {"a.txt": b"a"}))
    (store.path(added_to) / "b.txt").write_bytes(b"b")
    assert "altered" in store.verify(added_to)[0]


def test_stale_temp_entries_are_invisible_and_collected(tmp_path: Path) -> None:
    store = ObjectStore(tmp_path / "objects")
    src = _tree(tmp_path / "adapter", ADAPTER)
    digest = hash_dir(src)
    # What a crash mid-write leaves behind: a partial copy under tmp/.
    partial = tmp_path / "objects" / "tmp" / "dir-crashed"
    _tree(partial, {"adapter_config.json": b'{"r": 8}'})
    fresh = tmp_path / "objects" / "tmp" / "file-in-progress"
    fresh.write_bytes(b"still being written")
    old = time.time() - 2 * 3600
    os.utime(partial, (old, old))

    assert not store.exists(digest)
    assert store.gc_tmp() == 1, "only entries older than the threshold go; a live write is left alone"
    assert not partial.exists() and fresh.exists()
    assert store.gc_tmp(older_than_s=0) == 1
    assert store.put_dir(src) == digest and store.verify(digest) == []
