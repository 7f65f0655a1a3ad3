"""`slmkit data build` on 10k, 100k and 1M synthetic tickets: rows/s and peak memory per size.

Each size runs in a fresh process (so its peak RSS is its own) on a generated JSONL file that
has what enterprise exports have: personal data in about one row in eight, exact copies, near
copies (a word changed, a line added), conflicting labels and malformed lines. The baseline,
measured in the same process as each build, is the cheapest possible pass over the same file:
read every line and parse its JSON. The table shows what the builder costs on top of that, and
whether the cost per row stays flat as the input grows (linear cost, bounded memory).

    .venv/bin/python bench/data_build.py                 # 10k, 100k, 1M
    .venv/bin/python bench/data_build.py 10000 50000     # chosen sizes
    .venv/bin/python bench/data_build.py --semantic 10000  # with semantic (MiniLM) dedup on
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "support-tickets"
CACHE = Path(tempfile.gettempdir()) / "slmkit-bench-data"

CATEGORIES = ["billing", "shipping", "returns", "technical", "account"]
PRIORITIES = ["low", "normal", "high", "urgent"]
PRODUCTS = ["PulseBuds Pro", "HaloCam 2K", "Aria Tablet 11", "Lumen 27 Monitor", None]
OPENERS = ["Hi,", "Hello team,", "Good morning,", "Hey,", "Dear support,", ""]
VERBS = ["stopped", "keeps", "refuses", "started", "failed", "tried", "wanted", "needed", "asked", "paid"]
NOUNS = [
    "order", "refund", "parcel", "invoice", "charger", "screen", "battery", "account", "password", "warranty",
    "delivery", "courier", "label", "receipt", "update", "firmware", "speaker", "camera", "app", "subscription",
]  # fmt: skip
FIRST = ["Maria", "James", "Aisha", "Tom", "Priya", "Lukas", "Sofia", "Chen", "Olga", "Daniel"]


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(NOUNS), rng.choice(VERBS), "the", rng.choice(NOUNS), "after", str(rng.randint(2, 30))]
    words += [rng.choice(["days", "hours", "tries", "emails"]), "and", "my", rng.choice(NOUNS), rng.choice(VERBS)]
    return " ".join(words).capitalize() + "."


def _pii(rng: random.Random) -> str:
    kind = rng.randrange(4)
    name = rng.choice(FIRST)
    if kind == 0:
        return f"You can write to {name.lower()}.{rng.randint(10, 99)}@example.com."
    if kind == 1:
        return f"Call me on +44 20 7946 {rng.randint(1000, 9999)}. {name}"
    if kind == 2:
        return "The card ending 4242 4242 4242 4242 was charged twice."
    return f"My name is {name} and the login came from 198.51.100.{rng.randint(1, 254)}."


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """`rows` lines of synthetic tickets (about 3% exact copies, 3% near copies, 1% conflicts, 0.5% bad)."""
    rng = random.Random(seed)
    earlier: list[dict] = []
    with path.open("w", encoding="utf-8") as fh:
        for n in range(rows):
            roll = rng.random()
            if earlier and roll < 0.03:
                record = dict(rng.choice(earlier), ticket_id=f"T-{n}")
            elif earlier and roll < 0.06:
                base = rng.choice(earlier)
                record = dict(base, ticket_id=f"T-{n}", body=base["body"] + " Any update?")
            elif earlier and roll < 0.07:
                base = rng.choice(earlier)
                output = dict(
                    base["output"], priority=rng.choice([p for p in PRIORITIES if p != base["output"]["priority"]])
                )
                record = dict(base, ticket_id=f"T-{n}", output=output)
            elif roll < 0.075:
                fh.write(f'{{"ticket_id": "T-{n}", "subject": "cut off\n')
                continue
            else:
                body = " ".join(_sentence(rng) for _ in range(rng.randint(2, 5)))
                if rng.random() < 0.125:
                    body += " " + _pii(rng)
                record = {
                    "ticket_id": f"T-{n}",
                    "customer_id": f"C-{rng.randint(1, rows // 5 + 1)}",
                    "subject": f"{rng.choice(NOUNS)} {rng.choice(VERBS)} #{n}",
                    "body": f"{rng.choice(OPENERS)} {body}".strip(),
                    "output": {
                        "category": rng.choice(CATEGORIES),
                        "priority": rng.choice(PRIORITIES),
                        "order_id": f"ORD-{rng.randint(100000, 999999)}" if rng.random() < 0.6 else None,
                        "product": rng.choice(PRODUCTS),
                    },
                }
                if len(earlier) < 5000:
                    earlier.append(record)
                elif rng.random() < 0.01:
                    earlier[rng.randrange(len(earlier))] = record
            fh.write(json.dumps(record) + "\n")


def _project(root: Path, data: Path, semantic: bool) -> Path:
    config = yaml.safe_load((EXAMPLE / "slmkit.yaml").read_text())
    config["data"]["sources"] = [{"path": str(data), "id_field": "ticket_id"}]
    config["data"]["dedup"] = {"near": {"threshold": 0.7}, "semantic": {"enabled": semantic, "max_rows": 10_000_000}}
    config["data"]["pii"]["canaries"] = []
    root.mkdir(parents=True, exist_ok=True)
    (root / "slmkit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


CHILD = r"""
import json, sys, time
from pathlib import Path
data = Path(sys.argv[2])
began = time.perf_counter()
parsed = 0
with data.open("rb") as fh:
    for line in fh:
        try:
            parsed += isinstance(json.loads(line), dict)
        except ValueError:
            pass
baseline = time.perf_counter() - began
from slmkit.config import load_config
from slmkit.data import run_data_build
began = time.perf_counter()
result = run_data_build(load_config(Path(sys.argv[1])))
wall = time.perf_counter() - began

# The stages the target names, alone: PII removal, the exact-dedup key and MinHash, on the same
# rows, in one worker process per core (what the build uses for pass 1).
import multiprocessing
sys.path.insert(0, sys.argv[3])
from _data_stages import prepare, run_chunk
config = load_config(Path(sys.argv[1]))
chunks = prepare(config, data)
with multiprocessing.get_context("spawn").Pool(initializer=prepare, initargs=(config, None)) as pool:
    pool.map(run_chunk, [chunks[0][:8]] * 8)  # every worker started and warm; then time the rows
    began = time.perf_counter()
    done = sum(pool.imap_unordered(run_chunk, chunks))
    stages = time.perf_counter() - began
print(json.dumps({"baseline_s": baseline, "wall_s": wall, "timings": result.timings, "counts": result.counts,
                  "stage_rows": done, "stage_s": stages}))
"""


def run(size: int, semantic: bool) -> dict:
    CACHE.mkdir(exist_ok=True)
    data = CACHE / f"tickets-{size}.jsonl"
    if not data.exists():
        began = time.perf_counter()
        generate(data.with_suffix(".tmp"), size)
        data.with_suffix(".tmp").rename(data)
        print(f"  generated {size:,} rows in {time.perf_counter() - began:.1f}s", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        project = _project(Path(tmp) / "project", data, semantic)
        env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(project), str(data), str(Path(__file__).parent)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        stdout = child.stdout.read() if child.stdout else ""
        _, status, usage = os.wait4(child.pid, 0)
        if status != 0:
            raise SystemExit(f"build of {size} rows failed (status {status})")
    result = json.loads(stdout.strip().splitlines()[-1])
    result["peak_mb"] = usage.ru_maxrss / 1024
    return result


def main() -> None:
    args = sys.argv[1:]
    semantic = "--semantic" in args
    sizes = [int(a) for a in args if a.isdigit()] or [10_000, 100_000, 1_000_000]
    print(f"data build, {os.cpu_count()} CPU cores, semantic dedup {'on' if semantic else 'off'}")
    header = (
        f"{'rows':>10} {'wall s':>8} {'rows/s':>9} {'us/row':>7} {'read+clean rows/s':>18} {'dedup s':>8} "
        f"{'peak MB':>8} {'x JSON read':>11} {'PII+exact+MinHash rows/s':>25}  kept / rejected"
    )
    print(header)
    for size in sizes:
        r = run(size, semantic)
        t = r["timings"]
        dedup = sum(v for k, v in t.items() if "dedup" in k)
        c = r["counts"]
        print(
            f"{size:>10,} {r['wall_s']:>8.1f} {size / r['wall_s']:>9,.0f} {1e6 * r['wall_s'] / size:>7.1f} "
            f"{size / t['read + clean']:>18,.0f} {dedup:>8.1f} {r['peak_mb']:>8.0f} "
            f"{r['wall_s'] / r['baseline_s']:>11.1f} {r['stage_rows'] / r['stage_s']:>25,.0f}  "
            f"{c['kept']:,} / {c['rejected']:,}",
            flush=True,
        )
        print(f"{'':>10} phases: " + ", ".join(f"{k} {v:.1f}s" for k, v in t.items()), flush=True)


if __name__ == "__main__":
    main()
