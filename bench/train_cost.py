"""What a training row costs on this machine, by prompt description and batch size, on the shared sets.

The arithmetic behind slmkit's training defaults (docs/quality.md): for each configuration, a
real `run_train` of SmolLM2-135M-Instruct on a seeded stratified sample of the set's training
file for a fixed number of optimizer steps, reading the loop's own clock (validation and
checkpoints excluded). Prints tokens per row as the trainer counts them (every token of every
row), tokens actually computed per row (the shared system prompt once per batch), and rows/s;
then what an epoch of the whole set costs and how many epochs fit in 45 minutes.

    flock /tmp/slmkit-heavy.lock python bench/train_cost.py --set hwu64 --batch 8 --batch 16 --batch 32
    flock /tmp/slmkit-heavy.lock python bench/train_cost.py --set hwu64 --set it_tickets --mode full --mode none

Each configuration appends a line to --results (bench/results/train_cost.jsonl).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from quality import SETS, SHARED, _cpu_seconds, cpu_share, write_project

RESULTS = Path(__file__).resolve().parent / "results" / "train_cost.jsonl"
BUDGET_S = 45 * 60


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", choices=sorted(SETS))
    parser.add_argument("--mode", action="append", choices=["auto", "full", "short", "none"])
    parser.add_argument("--batch", action="append", type=int)
    parser.add_argument("--steps", type=int, default=24, help="optimizer steps timed per configuration")
    parser.add_argument("--base", default="smollm2-135m-instruct")
    parser.add_argument("--option", action="append", default=[], help="dotted.key=YAML value")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, default=Path("/tmp/slmkit-train-cost"))
    args = parser.parse_args()
    for name in args.set or ["hwu64"]:
        for mode in args.mode or ["auto"]:
            for batch in args.batch or [8]:
                record = measure(name, mode, batch, args)
                args.results.parent.mkdir(parents=True, exist_ok=True)
                with args.results.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
                print(line(record), flush=True)


def measure(name: str, mode: str, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    from slmkit.config import load_config
    from slmkit.data import run_data_build
    from slmkit.train import run_train

    rows = max(round(args.steps * batch * 1.15), 720)  # the steps' rows, and 64 for validation (10% of the rows)
    options = [
        f"task.describe_output_in_prompt={mode}",
        f"train.batch_size={batch}",
        f"train.max_steps={args.steps}",
        f"train.eval_every={args.steps}",
        "train.max_validation_rows=64",
        *args.option,
    ]
    project_args = argparse.Namespace(train_rows=rows, gold_rows=32, option=options)
    root, _ = write_project(name, args.base, args.work / f"{name}-{mode}-{batch}", project_args)
    config = load_config(root)
    run_data_build(config)
    began, cpu_began = time.perf_counter(), _cpu_seconds()
    metrics = run_train(config, progress=False).metrics
    wall = time.perf_counter() - began
    share = cpu_share(_cpu_seconds() - cpu_began, wall)
    full_rows = sum(1 for _ in (SHARED / name / "train.jsonl").open()) * 0.9  # the train split of the whole set
    rows_per_s = args.steps * batch / metrics["seconds"]
    return {
        "set": name,
        "mode": mode,
        "batch": batch,
        "options": args.option,
        "steps": args.steps,
        "seconds": metrics["seconds"],
        "wall_s": round(wall, 1),
        "tokens_per_row": round(metrics["tokens"] / (args.steps * batch), 1),
        "computed_per_row": metrics["prompt_cost"]["tokens_per_row"],
        "shared_tokens": metrics["prompt_cost"]["shared_tokens"],
        "rows_per_s": round(rows_per_s, 2),
        # One validation (at the last step) over its rows: a forward row's time / a training row's.
        "forward_cost": round(
            (metrics["validation_seconds"] / max(metrics["validation_examples"], 1)) / (1 / rows_per_s), 3
        ),
        "epoch_minutes": round(full_rows / rows_per_s / 60, 1),
        "epochs_in_45_min": round(BUDGET_S * rows_per_s / full_rows, 2),
        "precision": metrics["precision"],
        "cpu_share": share,  # near 1.0 when the run had the machine to itself
        "threads": int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1),
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def line(r: dict[str, Any]) -> str:
    return (
        f"{r['set']:<11} prompt {r['mode']:<5} batch {r['batch']:>3}: {r['tokens_per_row']:.1f} tokens/row "
        f"({r['computed_per_row']:.1f} computed, {r['shared_tokens']} shared), {r['rows_per_s']:.2f} rows/s "
        f"({r['steps']} steps in {r['seconds']:.0f}s; a validation row costs {r['forward_cost']:.2f} of a "
        f"training row) -> an epoch of the whole set {r['epoch_minutes']:.0f} min, "
        f"{r['epochs_in_45_min']:.2f} epochs in 45 min; CPU share {r['cpu_share']:.2f}"
    )


if __name__ == "__main__":
    main()
