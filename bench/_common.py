"""What the benchmarks share: the example task, its first valid tickets, and the real SmolLM2."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "support-tickets"


def example_rows(count: int) -> tuple[Any, list[tuple[str, dict[str, Any]]]]:
    """The example's Task and its first `count` tickets whose output is valid: (input text, output)."""
    from slmkit.config import load_config
    from slmkit.task import Task

    task = Task.from_config(load_config(EXAMPLE, check_files=False))
    rows = []
    for line in (EXAMPLE / "data" / "tickets.jsonl").read_bytes().splitlines():
        try:  # the example plants malformed rows; a benchmark only wants clean ones
            record = json.loads(line.decode("utf-8"))
            if task.validate(record["output"]):
                continue
            rows.append((task.render_input(record), record["output"]))
        except (ValueError, KeyError, TypeError):
            continue
        if len(rows) == count:
            break
    return task, rows


def smollm2() -> Any:
    from slmkit.models import resolve_base_model

    return resolve_base_model("smollm2-135m-instruct")


def timed(fn: Callable[[], Any], repeats: int = 1) -> tuple[float, Any]:
    """Best wall time of `repeats` runs, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        began = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - began)
    return best, result


def threads() -> int:
    import torch

    torch.set_num_threads(int(os.environ.get("SLMKIT_BENCH_THREADS", os.cpu_count() or 1)))
    return torch.get_num_threads()
