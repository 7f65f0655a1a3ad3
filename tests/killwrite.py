"""Kill a real `slmkit` process (SIGKILL: no clean-up, as a crash or the OOM killer) in the middle of a write.

`run_killed(args, writing="run.json", after_bytes=40)` runs the CLI in a subprocess whose file
opens are watched: the first time it has written 40 bytes of a file named `run.json` (or of a
temporary `.run.json.*` beside it; `writing` is a glob), the bytes are flushed to disk and the
process kills itself. `code` runs instead of the CLI (it sees `args` in sys.argv[1:]).
`removing=NAME` kills it right after it deletes a tree whose name contains NAME instead. Nothing
in slmkit knows about this: the hook wraps Python's own `open` and `shutil.rmtree`.
"""

from __future__ import annotations

import builtins
import io
import os
import shutil
import signal
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def run_killed(
    args: list[str],
    *,
    writing: str | None = None,
    after_bytes: int = 0,
    removing: str | None = None,
    code: str = "from slmkit.cli.main import main; main()",
) -> subprocess.CompletedProcess[str]:
    bootstrap = (
        "import tests.killwrite as k; "
        f"k.install(writing={writing!r}, after_bytes={after_bytes}, removing={removing!r}); {code}"
    )
    env = {**os.environ, "PYTHONPATH": f"{REPO / 'src'}{os.pathsep}{REPO}"}
    return subprocess.run(
        [sys.executable, "-c", bootstrap, *args], env=env, capture_output=True, text=True, timeout=600
    )


def install(*, writing: str | None, after_bytes: int, removing: str | None) -> None:
    if writing is not None:
        original = builtins.open

        def watched_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            handle = original(file, mode, *args, **kwargs)
            name = os.path.basename(os.fsdecode(file)) if isinstance(file, (str, bytes, os.PathLike)) else ""
            if any(m in mode for m in "wxa") and (fnmatch(name, writing) or fnmatch(name, f".{writing}.*")):
                return _Dying(handle, after_bytes)
            return handle

        builtins.open = watched_open
        io.open = watched_open  # pathlib's write_text opens through io.open
    if removing is not None:
        rmtree = shutil.rmtree

        def dying_rmtree(path: Any, *args: Any, **kwargs: Any) -> None:
            rmtree(path, *args, **kwargs)
            if removing in os.path.basename(os.fsdecode(path)):
                _die()

        shutil.rmtree = dying_rmtree  # type: ignore[assignment]


class _Dying:
    """A file that kills its process once `after_bytes` have been written to it."""

    def __init__(self, handle: Any, after_bytes: int) -> None:
        self._handle = handle
        self._left = after_bytes

    def write(self, data: Any) -> int:
        if len(data) < self._left:
            self._left -= len(data)
            return int(self._handle.write(data))
        self._handle.write(data[: self._left])
        self._handle.flush()
        os.fsync(self._handle.fileno())
        _die()
        return 0

    def __enter__(self) -> _Dying:
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)
