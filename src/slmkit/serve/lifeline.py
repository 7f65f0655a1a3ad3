"""Run an engine process, and stop its whole process group when the gateway that started it dies.

    python lifeline.py FD -- COMMAND...

Started by the gateway (serve/processes.py) as the leader of a new process group, with FD the
read end of a pipe whose write end only the gateway holds. It runs COMMAND as its child and
exits with its exit code. When the pipe reports end-of-file the gateway is gone, whatever
killed it: SIGTERM to the group, SIGKILL after a grace period, so no engine outlives its
gateway. Standard library only, and run by path, so any Python can run it (vLLM's own venv too).
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

GRACE_S = 10.0


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: lifeline.py FD -- COMMAND...", file=sys.stderr)
        return 2
    fd = int(argv[1])
    # The gateway stops the group with SIGTERM: the engine gets it too, and this process leaves
    # when the engine has (so the gateway sees the engine's exit, not ours, first).
    signal.signal(signal.SIGTERM, lambda *_: None)
    child = subprocess.Popen(argv[3:])
    while child.poll() is None:
        readable, _, _ = select.select([fd], [], [], 0.5)
        if readable and not os.read(fd, 1):  # end-of-file: the gateway is gone
            stop_group(child)
    code = child.returncode
    return code if code >= 0 else 128 - code


def stop_group(child: subprocess.Popen[bytes]) -> None:
    os.killpg(0, signal.SIGTERM)
    deadline = time.monotonic() + GRACE_S
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    os.killpg(0, signal.SIGKILL)  # whatever is left of the group, this process included


if __name__ == "__main__":
    sys.exit(main(sys.argv))
