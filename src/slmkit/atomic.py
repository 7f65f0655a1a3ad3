"""Writes that a crash cannot leave half done: temp name + fsync + rename, and a lock for read-modify-write.

A reader sees the old file or the new one, never a mixture: the bytes go to a temporary name
beside the target, are flushed to disk, and the name is swapped in one rename (then the folder
entry is flushed too). A process killed at any instant leaves at most a stray `.NAME.*.tmp`.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import json
import os
import secrets
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_bytes(path: Path, data: bytes) -> None:
    """Put `data` at `path` atomically and durably (permissions as a plain write would give)."""
    path = Path(path)
    tmp = _temp_name(path)
    try:
        with open(tmp, "xb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, value: Any, **dumps: Any) -> None:
    """`json.dumps(value, **dumps)` written atomically (indent=2 unless given)."""
    write_text(path, json.dumps(value, **{"indent": 2, **dumps}))


def replace_dir(new: Path, dest: Path) -> None:
    """Move the directory `new` to `dest`, replacing what is there in one step.

    A directory cannot be renamed over a non-empty one, and deleting the old one first leaves a
    moment with neither. On Linux the two are swapped atomically (renameat2 RENAME_EXCHANGE) and
    the old tree, now under the temporary name, is deleted afterwards: a kill at any instant
    leaves `dest` whole, old or new. Elsewhere the old tree is renamed aside first.
    """
    new, dest = Path(new), Path(dest)
    if not dest.exists():
        os.replace(new, dest)
    elif _exchange(new, dest):
        shutil.rmtree(new)
    else:
        aside = _temp_name(dest)
        os.replace(dest, aside)
        os.replace(new, dest)
        shutil.rmtree(aside, ignore_errors=True)
    fsync_dir(dest.parent)


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on `path` (created if missing), held across the block; waits for other holders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries: a rename is durable only once the folder itself is on disk."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a folder; the rename itself is still atomic
    finally:
        os.close(fd)


def _temp_name(path: Path) -> Path:
    # Unique per writer: two processes writing the same file never share a temporary.
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2); False where the system cannot."""
    if sys.platform != "linux":
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    result = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if result == 0:
        return True
    errno = ctypes.get_errno()
    if errno in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this file system cannot swap
        return False
    raise OSError(errno, os.strerror(errno), str(b))
