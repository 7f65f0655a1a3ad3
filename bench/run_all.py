"""Run every benchmark in turn (`make bench`); each prints its ratios against its own baseline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

for script in (
    "train_step.py",
    "train_throughput.py",
    "replay_drift.py",
    "generate.py",
    "eval_throughput.py",
    "serve_load.py",
    "drift_power.py",
    "monitor_scale.py",
    "data_build.py",
    "pii_presidio.py",
    "retrieval_index.py",
    "retrieval_answers.py",
):
    print(f"== {script}", flush=True)
    subprocess.run([sys.executable, str(HERE / script)], check=True)
