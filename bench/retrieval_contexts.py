"""Retrieved context for training rows in `data build`: rows/s with the questions embedded one by one
(the baseline, as the first version did) and in batches (`passes.GROUND_BATCH`), in the same run.

    flock /tmp/slmkit-heavy.lock .venv/bin/python bench/retrieval_contexts.py [--rows 2000]

A copy of examples/policy-qa gets `--rows` distinct questions (the example's questions with
varied openings). Two measurements, each with the baseline first:
1. the contexts alone: `TrainingContexts` over every row, one row per call vs `attach_many` over
   batches (the index is built once, the embedding model loaded before timing);
2. `slmkit data build` end to end, its "split + write + retrieved context" phase, with
   GROUND_BATCH = 1 and the default.
Both give the same rows (checked): only the number of calls into the embedding model differs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "policy-qa"
OPENINGS = ["", "Hi! ", "Hello, ", "Quick question: ", "Please tell me: ", "Sorry to bother you. ", "Hey there, ",
            "Good morning! ", "One thing: ", "I wonder: ", "Can you help? ", "Question from a customer: "]  # fmt: skip
CLOSINGS = ["", " Thanks!", " Thank you.", " Cheers.", " Many thanks in advance.", " Best regards."]


def project(root: Path, rows: int) -> Any:
    from slmkit.config import load_config

    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".slmkit", "__pycache__"))
    base = [json.loads(line) for line in (EXAMPLE / "data" / "questions.jsonl").read_text().splitlines()]
    out = []
    for n in range(rows):
        row = base[n % len(base)]
        variant = n // len(base)
        opening, closing = OPENINGS[variant % len(OPENINGS)], CLOSINGS[(variant // len(OPENINGS)) % len(CLOSINGS)]
        out.append({**row, "question": f"{opening}{row['question']}{closing}"})
    (root / "data" / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in out))
    raw = yaml.safe_load((root / "slmkit.yaml").read_text())
    raw["data"]["dedup"] = {"near": {"enabled": False}, "semantic": {"enabled": False}}  # keep every variant
    (root / "slmkit.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    return load_config(root)


def contexts_alone(config: Any, rows: list[dict[str, Any]]) -> tuple[float, float]:
    from slmkit.data.passes import GROUND_BATCH
    from slmkit.retrieval import Retriever, open_index
    from slmkit.retrieval.training import TrainingContexts
    from slmkit.task import Task

    task = Task.from_config(config)
    retriever = Retriever(open_index(config))
    retriever.embed_queries(["warm up the model"])

    def one_by_one() -> list[dict[str, Any]]:
        contexts = TrainingContexts(task, retriever, seed=13)
        return [contexts.attach(row) for row in rows]

    def batched() -> list[dict[str, Any]]:
        contexts = TrainingContexts(task, retriever, seed=13)
        return [
            g for lo in range(0, len(rows), GROUND_BATCH) for g in contexts.attach_many(rows[lo : lo + GROUND_BATCH])
        ]

    t0 = time.perf_counter()
    single = one_by_one()
    t1 = time.perf_counter()
    many = batched()
    t2 = time.perf_counter()
    assert single == many, "batched and single embeddings gave different contexts"
    return t1 - t0, t2 - t1


def build_phase(root: Path, rows: int, batch: int) -> tuple[float, int]:
    """The phase's seconds and rows written, in a fresh copy (so its gold rows are grounded too, not copied)."""
    from slmkit.data import passes, run_data_build

    config = project(root, rows)
    default, passes.GROUND_BATCH = passes.GROUND_BATCH, batch
    try:
        result = run_data_build(config)
    finally:
        passes.GROUND_BATCH = default
    written = result.counts["train"] + result.counts["validation"] + result.counts["gold"]
    return result.timings["split + write + retrieved context"], written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    from slmkit.data import passes
    from slmkit.retrieval import run_index_update

    with tempfile.TemporaryDirectory(prefix="slmkit-bench-ctx-") as tmp:
        config = project(Path(tmp) / "policy-qa", args.rows)
        run_index_update(config)
        records = [
            {"id": f"q{n}", "input": r["question"], "output": r["output"]}
            for n, r in enumerate(json.loads(line) for line in (config.root / "data" / "questions.jsonl").open())
        ]
        single, many = contexts_alone(config, records)
        print(f"{len(records)} rows, contexts alone (MiniLM loaded, index built)")
        line("one question per call (baseline)", single, len(records))
        line(f"batches of {passes.GROUND_BATCH} (data build)", many, len(records), single)
        base_s, written = build_phase(Path(tmp) / "one", args.rows, 1)
        batch_s, _ = build_phase(Path(tmp) / "batched", args.rows, passes.GROUND_BATCH)
        print(f"data build, phase 'split + write + retrieved context' ({written} rows written)")
        line("GROUND_BATCH = 1 (baseline)", base_s, written)
        line(f"GROUND_BATCH = {passes.GROUND_BATCH}", batch_s, written, base_s)


def line(name: str, seconds: float, rows: int, baseline: float | None = None) -> None:
    ratio = f"  {baseline / seconds:.2f}x" if baseline else ""
    print(f"  {name:<36} {seconds:8.2f}s {rows / seconds:9.1f} rows/s{ratio}")


if __name__ == "__main__":
    main()
