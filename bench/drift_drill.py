"""The drift drill: unshifted then shifted traffic through a running `slmkit serve`; the alerts answer.

Takes the demo's release (`.demo/support-tickets`, made by `make demo`; run here first when it
is missing), copies the project (without its request log) and starts `slmkit serve` on it as a
separate process, with the example's alert rules evaluated every `--every` seconds inside the
server and 10% of answers captured for review. Then it replays, through the official `openai`
client, `--unshifted` tickets of examples/support-tickets/traffic/unshifted.jsonl (what
customers always write) and `--shifted` of traffic/shifted.jsonl (a product line the model
never saw, refunds asked for in new words), `--chunk` at a time. After each chunk it waits for
the server's next evaluation and prints the drift tests and alert states the server stored, and
at the end how many shifted requests it took for the input drift alert to fire, the server's
alert events, and `slmkit monitor` over the drill.

    .venv/bin/python bench/drift_drill.py     # or: make drill
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TRAFFIC = REPO / "examples" / "support-tickets" / "traffic"
WATCHED = ("input drift", "label mix drift", "less sure of its answers", "many refusals")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, default=REPO / ".demo" / "support-tickets")
    parser.add_argument("--unshifted", type=int, default=300)
    parser.add_argument("--shifted", type=int, default=300)
    parser.add_argument("--chunk", type=int, default=25)
    parser.add_argument("--every", type=float, default=10.0, help="seconds between the server's alert evaluations")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    began = time.perf_counter()
    if not (args.project / ".slmkit" / "registry.db").exists():
        print(f"no release at {args.project}: running `slmkit demo` first (10 to 25 minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "slmkit", "demo"], cwd=REPO, check=True)

    with tempfile.TemporaryDirectory(prefix="slmkit-drill-") as tmp:
        project = Path(tmp) / "support-tickets"
        ignore = shutil.ignore_patterns("requests.db*", "runs", "monitor", "replay", "keys.db*")
        shutil.copytree(args.project, project, ignore=ignore)
        _configure(project, args.every)
        print("== the alert rules, each evaluated for the release (`slmkit check`)", flush=True)
        check = _slmkit("check", "-p", str(project))
        print("\n".join(line for line in check.splitlines() if "alert" in line.lower() or line.startswith("  ok")))
        server, url = _serve(project)
        try:
            found = _replay(project, url, args)
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=60)
        print("\n== alert events the server stored (alert_events)")
        for event in _events(project):
            print(
                f"  {event['ts']}  {event['rule']:<26} {event['previous']:>8} -> {event['state']:<9} "
                f"value {event['value']}"
            )
        print("\n== slmkit monitor --since 1h --window 10m")
        print(_slmkit("monitor", "-p", str(project), "--since", "1h", "--window", "10m", "--out", str(REPO / ".drill")))
        print(f"== done in {time.perf_counter() - began:.0f}s; {found}")


def _configure(project: Path, every: float) -> None:
    import yaml

    path = project / "slmkit.yaml"
    settings = yaml.safe_load(path.read_text())
    example = yaml.safe_load((REPO / "examples" / "support-tickets" / "slmkit.yaml").read_text())
    monitor = settings.setdefault("monitor", {})
    monitor["alerts"] = example["monitor"]["alerts"]  # the example's rules, even on an older demo copy
    monitor["evaluate_every_s"] = every
    monitor["capture"] = {"share": 0.1, "retention_days": 30}
    path.write_text(yaml.safe_dump(settings, sort_keys=False))


def _slmkit(*args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "slmkit", *args], capture_output=True, text=True, check=False)
    return result.stdout + (f"(exit {result.returncode}) {result.stderr[-2000:]}" if result.returncode else "")


def _serve(project: Path) -> tuple[subprocess.Popen[str], str]:
    """`slmkit serve` as its own process on a free port; its URL once it listens."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen(
        [sys.executable, "-m", "slmkit", "serve", "-p", str(project), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert server.stdout is not None
    print("== slmkit serve", flush=True)
    for line in server.stdout:
        if line.startswith(("slmkit serve:", "  ")):
            print(line.rstrip(), flush=True)
        match = re.search(r"OpenAI base URL: (\S+)", line)
        if match:
            url = match.group(1)
        if "monitoring:" in line:
            break
    else:
        raise SystemExit(f"the server stopped (exit {server.wait()})")
    # Its access log goes on being written: drain it, or the pipe fills and the server blocks.
    threading.Thread(target=lambda: [None for _ in server.stdout or ()], daemon=True).start()
    return server, url


def _replay(project: Path, url: str, args: argparse.Namespace) -> str:
    from slmkit.monitor.replay import read_requests, replay

    streams = [
        ("unshifted", read_requests(TRAFFIC / "unshifted.jsonl", ["subject", "body"])[: args.unshifted]),
        ("shifted", read_requests(TRAFFIC / "shifted.jsonl", ["subject", "body"])[: args.shifted]),
    ]
    print(f"\n== replaying through {url} ({args.concurrency} at a time); the server judges every {args.every:g}s")
    print(f"{'traffic':<11}{'sent':>5}  " + "  ".join(f"{rule:<30}" for rule in WATCHED))
    fired_after: int | None = None
    total = 0
    for phase, requests in streams:
        for lo in range(0, len(requests), args.chunk):
            chunk = requests[lo : lo + args.chunk]
            stats = replay(url, "support-tickets", chunk, concurrency=args.concurrency)
            if stats.errors:
                print(f"  errors: {stats.errors}")
            total += len(chunk)
            states = _after_next_evaluation(project, total)
            print(
                f"{phase:<11}{lo + len(chunk):>5}  " + "  ".join(f"{_cell(states.get(r)):<30}" for r in WATCHED),
                flush=True,
            )
            if phase == "shifted" and fired_after is None and states.get("input drift", {}).get("state") == "firing":
                fired_after = lo + len(chunk)
    quiet = "the input drift alert stayed quiet on the unshifted traffic"
    if fired_after is None:
        return f"{quiet}, and did not fire on {args.shifted} shifted requests"
    held = f"the window then held {args.unshifted} unshifted ones too"
    return f"{quiet}; it fired after {fired_after} shifted requests ({held})"


def _after_next_evaluation(project: Path, logged: int) -> dict[str, dict[str, Any]]:
    """Wait until the log holds `logged` rows and the server evaluated after that; the states it stored."""
    db = project / ".slmkit" / "requests.db"
    deadline = time.monotonic() + 300
    seen: str | None = None  # when every row was in the log
    while True:
        conn = sqlite3.connect(db)
        try:
            count = conn.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
            rows = conn.execute("SELECT rule, state, value, evaluated_at, evidence FROM alert_state").fetchall()
        finally:
            conn.close()
        if seen is None and count >= logged:
            seen = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        evaluated = min((r[3] for r in rows), default="")
        if seen is not None and rows and evaluated > seen:
            return {r[0]: {"state": r[1], "value": r[2], "evidence": json.loads(r[4])} for r in rows}
        if time.monotonic() > deadline:
            raise SystemExit("the server did not evaluate its alert rules within 5 minutes")
        time.sleep(1.0)


def _cell(state: dict[str, Any] | None) -> str:
    if state is None:
        return "-"
    evidence = state["evidence"]
    test = evidence.get("test")
    if test:
        return f"{state['state']} p={test['p_adjusted']:.2g} e={test['effect']:.3g}"
    if evidence.get("metric") == "refusal_rate" and state["value"] is not None:
        return f"{state['state']} {state['value']:.2f}"
    return f"{state['state']} (n={evidence.get('requests')})"


def _events(project: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(project / ".slmkit" / "requests.db")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT ts, rule, previous, state, value FROM alert_events ORDER BY id")]
    finally:
        conn.close()


if __name__ == "__main__":
    main()
