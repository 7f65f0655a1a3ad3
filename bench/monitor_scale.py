"""`slmkit monitor` over a million logged requests: wall time and peak memory, against a plain read.

Writes 1,000,000 request-log rows over the last 7 days for two releases of the example task
(every signal filled in, a 384-byte int8 embedding on each, the embeddings those of real tickets
so the drift test has real work), then runs, each in a fresh process:
- baseline: Python's sqlite3 reading the same rows' numeric columns, nothing else;
- `slmkit monitor --since 7d`: the table, drift tests (span and last hour, both releases),
  the time series, monitor.json and monitor.html.

    .venv/bin/python bench/monitor_scale.py [--rows 1000000]

Target: under 10 s and under 1 GB (peak RSS of the process).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import EXAMPLE

LABELS = ("billing", "shipping", "returns", "technical", "account", "out_of_scope")
MIX = (0.2, 0.2, 0.18, 0.2, 0.15, 0.07)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slmkit-bench-monitor-") as tmp:
        project = Path(tmp) / "project"
        shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".slmkit"))
        began = time.perf_counter()
        _releases(project)
        written = _fill(project, args.rows)
        size_mib = (project / ".slmkit" / "requests.db").stat().st_size / 2**20
        print(
            f"wrote {written:,} rows in {time.perf_counter() - began:.0f}s ({size_mib:.0f} MiB requests.db)", flush=True
        )
        read_s, read_mb = _timed([sys.executable, "-c", _PLAIN_READ, str(project / ".slmkit" / "requests.db")])
        cmd = [sys.executable, "-m", "slmkit", "monitor", "-p", str(project), "--since", "7d", "--out", f"{tmp}/out"]
        monitor_s, monitor_mb = _timed(cmd, show=True)
    print(f"\n{'':<36}{'seconds':>9}{'peak RSS MiB':>14}")
    print(f"{'plain sqlite3 read (baseline)':<36}{read_s:>9.1f}{read_mb:>14.0f}")
    print(f"{'slmkit monitor --since 7d':<36}{monitor_s:>9.1f}{monitor_mb:>14.0f}")
    print(
        f"\nslmkit monitor over {args.rows:,} requests: {monitor_s:.1f}s (x{monitor_s / read_s:.1f} the plain read), "
        f"{monitor_mb:.0f} MiB; target under 10 s and 1024 MiB: "
        + ("met" if monitor_s < 10 and monitor_mb < 1024 else "NOT met")
    )


_PLAIN_READ = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
cursor = conn.execute("SELECT ts, outcome, valid, refused, latency_ms, confidence, label FROM requests")
n = 0
while True:
    rows = cursor.fetchmany(100000)
    if not rows:
        break
    n += len(rows)
print(f"read {n} rows")
"""


def _timed(cmd: list[str], show: bool = False) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of `cmd`, run from a small launcher process.

    Not from this process: a child forked from it starts out counting this process's pages (torch,
    the embedder, a million rows built), and Linux keeps that high-water mark in the child's
    ru_maxrss across exec, so every child would report at least this process's size.
    """
    began = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - began
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
    output, _, peak = result.stdout.rpartition("peak_rss_kib ")
    if show:
        print("\n".join(output.splitlines()[:60]))
    return seconds, int(peak) / 1024


_LAUNCHER = """
import resource, subprocess, sys
code = subprocess.run(sys.argv[1:]).returncode
print("peak_rss_kib", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, flush=True)
sys.exit(code)
"""


def _releases(project: Path) -> None:
    """Two releases of the example task with references (a dataset and an eval report each)."""
    from slmkit.config import load_config
    from slmkit.monitor.capture import Redactor
    from slmkit.registry import Registry
    from slmkit.task import Task

    config = load_config(project)
    task = Task.from_config(config)
    redactor = Redactor(config.data.pii)
    inputs = [redactor.text(task.render_input(r)) for r in _tickets(project / "data" / "tickets.jsonl")]
    registry = Registry(config.state_dir)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "dataset"
        data.mkdir()
        rows = [
            {"id": str(i), "input": t, "label": "billing", "fields": {}, "output": {}} for i, t in enumerate(inputs)
        ]
        (data / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        digest = registry.store.put_dir(data)
        registry.record_dataset(f"ds-{digest[:12]}", task.name, digest, "0" * 64, {}, {})
        rng = random.Random(0)
        predictions = []
        for i in range(104):
            label = rng.choices(LABELS, MIX)[0]
            answer = {"category": label, "priority": "normal", "order_id": None, "product": None}
            predictions.append({"id": i, "adapter": {"text": json.dumps(answer), "confidence": rng.uniform(0.4, 1.0)}})
        report = Path(tmp) / "report.json"
        report.write_text(json.dumps({"predictions": predictions, "decoding": {"label_scoring": True}}))  # as served
        report_digest = registry.store.put_file(report)
        adapter = Path(tmp) / "adapter"
        adapter.mkdir()
        (adapter / "adapter_config.json").write_text("{}")
        adapter_digest = registry.store.put_dir(adapter)
        for _ in range(2):
            registry.create_release(
                name=task.name, run_id="bench", adapter_digest=adapter_digest, base_model={"spec": "bench"},
                dataset_version=f"ds-{digest[:12]}", gold_hash="0" * 64, eval_report_digest=report_digest,
                config=config.resolved(), note="monitor_scale benchmark",
            )  # fmt: skip
    registry.close()
    # The input drift reference, built now (as `slmkit release` does), so the timed run only reads it.
    from slmkit.monitor.embedding import InputEmbedder, reference_for

    with Registry(config.state_dir) as registry:
        reference_for(registry, f"ds-{digest[:12]}", InputEmbedder(), size=config.monitor.drift.reference_size)


def _tickets(path: Path) -> list[dict[str, object]]:
    out = []
    for line in path.read_bytes().splitlines():
        try:
            record = json.loads(line.decode("utf-8"))
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("body"), str) and record.get("subject") is not None:
            out.append(record)
    return out


def _fill(project: Path, count: int) -> int:
    """`count` rows spread over the last 7 days, half per release, written in 50k-row transactions."""
    from slmkit.config import load_config
    from slmkit.monitor import RequestLog
    from slmkit.monitor.embedding import InputEmbedder, quantize
    from slmkit.task import Task

    config = load_config(project)
    task = Task.from_config(config)
    traffic = [json.loads(line) for line in (project / "traffic" / "unshifted.jsonl").read_text().splitlines()]
    blobs = quantize(InputEmbedder()([task.render_input(r) for r in traffic]))
    RequestLog(config.state_dir / "requests.db").close()  # the schema
    conn = sqlite3.connect(config.state_dir / "requests.db")
    conn.execute("PRAGMA synchronous = OFF")
    rng = np.random.default_rng(0)
    end = datetime.now(UTC) - timedelta(minutes=1)
    span_s = 7 * 86400
    columns = ("ts, request_id, model_ref, release_name, release_version, latency_ms, prompt_tokens, "
               "completion_tokens, valid, refused, replaced, attempts, escalate, outcome, label, null_fields, "
               "confidence, ttft_ms, itl_ms, embedding, novelty, flagged")  # fmt: skip
    sql = f"INSERT INTO requests ({columns}) VALUES ({', '.join('?' * 22)})"
    written = 0
    for lo in range(0, count, 50_000):
        n = min(50_000, count - lo)
        offsets = np.sort(rng.uniform(0, span_s, n))
        labels = rng.choice(len(LABELS), n, p=MIX)
        error = rng.random(n) < 0.01
        rows = []
        for i in range(n):
            ts = (
                (end - timedelta(seconds=span_s) + timedelta(seconds=float(offsets[i])))
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z")
            )
            ok = not error[i]
            rows.append((
                ts, f"chatcmpl-{lo + i}", "support-tickets", "support-tickets", 1 + (lo + i) % 2,
                float(rng.gamma(4, 300)), 180, 40, int(rng.random() < 0.98) if ok else None, int(labels[i] == 5),
                0, 1, int(rng.random() < 0.1), "ok" if ok else "error", LABELS[labels[i]] if ok else None, 1,
                float(rng.uniform(0.4, 1.0)) if ok else None, float(rng.gamma(3, 100)), float(rng.gamma(5, 5)),
                blobs[(lo + i) % len(blobs)] if ok else None, float(rng.uniform(0, 0.5)), 0,
            ))  # fmt: skip
        conn.executemany(sql, rows)
        conn.commit()
        written += n
    conn.close()
    return written


if __name__ == "__main__":
    main()
