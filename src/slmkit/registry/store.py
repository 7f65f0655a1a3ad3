"""Content-addressed artifact store: files and directories named by their sha256.

Every write goes to a temporary name under `tmp/` and is renamed into place, so an object
that exists is complete: a crash leaves at most a stray temp entry, never a half object.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path

from slmkit.errors import RegistryError

CHUNK = 1 << 20
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def hash_file(path: Path) -> str:
    """sha256 of a file's bytes, streamed in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_dir(path: Path) -> str:
    """sha256 of a tree: over the sorted lines `relpath<TAB>file sha256<TAB>size<LF>`.

    Paths are posix and relative to `path`; only regular files count (empty directories do
    not), and a symbolic link or special file is refused, since its content is not in the tree.
    """
    lines = [f"{rel}\t{hash_file(file)}\t{file.stat().st_size}\n" for rel, file in _files(path)]
    return hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()


def _files(root: Path) -> list[tuple[str, Path]]:
    """(posix relpath, path) of every regular file under `root`, sorted."""
    files = []
    for path in sorted(root.rglob("*")):
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            raise RegistryError(
                f"{path} is a symbolic link; a stored artifact must hold plain files",
                hint="copy the file it points to into the directory, then store it again",
            )
        if stat.S_ISREG(mode):
            files.append((path.relative_to(root).as_posix(), path))
        elif not stat.S_ISDIR(mode):
            raise RegistryError(f"{path} is not a regular file; a stored artifact must hold plain files")
    return files


def _fsync_dir(path: Path) -> None:
    # A rename is durable only once the directory entry itself is on disk.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ObjectStore:
    """Files and directory trees under `root/sha256/<d[:2]>/<d>`; in-progress writes under `root/tmp/`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"

    def _target(self, digest: str) -> Path:
        # Digests come from records and user input (`--adapter sha256:...`); a malformed one must
        # not become a path outside the store.
        if not _DIGEST.match(digest):
            raise RegistryError(f"{digest!r} is not a sha256 digest (64 lowercase hex characters)")
        return self.root / "sha256" / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        """Whether the object is stored (complete: partial writes live only under tmp/)."""
        return self._target(digest).exists()

    def path(self, digest: str) -> Path:
        """Where the object lives; RegistryError if it is not stored."""
        target = self._target(digest)
        if not target.exists():
            raise RegistryError(
                f"artifact sha256:{digest} is missing from {self.root}",
                hint="it was deleted or never stored; `Registry.verify()` lists every missing artifact, "
                "and re-running the stage that wrote it stores it again",
            )
        return target

    def put_file(self, src: Path) -> str:
        """Store a copy of the file `src`; returns its sha256. Storing the same bytes twice writes nothing."""
        src = Path(src)
        if not src.is_file() or src.is_symlink():
            raise RegistryError(f"{src} is not a regular file; cannot store it")
        digest = hash_file(src)
        target = self._target(digest)
        if target.exists():
            return digest
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self.tmp, prefix="file-")
        try:
            with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
                shutil.copyfileobj(inp, out, CHUNK)
                out.flush()
                os.fsync(out.fileno())
            # Hash what was copied, not what we read first: the source may change underneath us.
            if hash_file(Path(tmp_name)) != digest:
                raise RegistryError(f"{src} changed while it was being stored", hint="store it again once it is final")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, target)  # same bytes if another process won the race
            _fsync_dir(target.parent)
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)
        return digest

    def put_dir(self, src: Path) -> str:
        """Store a copy of the tree at `src`; returns its tree digest (see `hash_dir`). Idempotent."""
        src = Path(src)
        if not src.is_dir() or src.is_symlink():
            raise RegistryError(f"{src} is not a directory; cannot store it as a directory artifact")
        digest = hash_dir(src)
        target = self._target(digest)
        if target.exists():
            return digest
        self.tmp.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.tmp, prefix="dir-"))
        try:
            for rel, file in _files(src):
                dest = staging / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(file, dest)
                with open(dest, "rb") as fh:
                    os.fsync(fh.fileno())
            if hash_dir(staging) != digest:
                raise RegistryError(f"{src} changed while it was being stored", hint="store it again once it is final")
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(staging, target)
            except OSError:
                # Another process stored the same tree first (a non-empty target cannot be
                # replaced): same digest, same content, nothing to do.
                if not target.exists():
                    raise
            _fsync_dir(target.parent)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return digest

    def size(self, digest: str) -> int:
        """Bytes the object holds (the sum of its files for a directory)."""
        target = self.path(digest)
        if target.is_dir():
            return sum(file.stat().st_size for _, file in _files(target))
        return target.stat().st_size

    def verify(self, digest: str) -> list[str]:
        """Problems with one object (missing, altered, malformed name); empty when it re-hashes to its name."""
        try:
            target = self._target(digest)
        except RegistryError as exc:
            return [str(exc)]
        if not target.exists():
            return [f"sha256:{digest} is missing from {self.root}"]
        try:
            actual = hash_dir(target) if target.is_dir() else hash_file(target)
        except (RegistryError, OSError) as exc:
            return [f"sha256:{digest} cannot be read: {exc}"]
        if actual != digest:
            return [f"sha256:{digest} was altered (its content now hashes to {actual})"]
        return []

    def gc_tmp(self, older_than_s: float = 3600.0) -> int:
        """Remove temp entries left by interrupted writes; returns how many were removed.

        Only entries older than `older_than_s` go, so a write in progress in another process
        is not pulled out from under it; pass 0 when nothing else can be writing.
        """
        if not self.tmp.exists():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for entry in self.tmp.iterdir():
            try:
                if entry.lstat().st_mtime > cutoff:
                    continue
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
            except FileNotFoundError:  # its writer finished or cleaned up meanwhile
                continue
            removed += 1
        return removed
