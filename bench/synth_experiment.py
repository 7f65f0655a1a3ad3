"""Does grounded synthetic data help when there are few real rows? SNIPS intents, real-only vs real + synthetic.

For each size N (25 / 50 / 100 real rows, nested stratified samples of SNIPS train), one project:
the gold set is 140 rows of SNIPS *test* (20 per intent), drawn by a first build over the test
rows and locked, so every arm of every size is graded on the same items. The real build reads the
N train rows; `slmkit synth` asks the teacher (SmolLM2-135M-Instruct behind vLLM's OpenAI server,
temperature 0.8) for paraphrases, same-label requests and near misses of every seed, checks them
and writes real + synthetic as a new dataset version. Each arm trains the same LoRA for the same
number of steps (equal compute) and is evaluated on the gold set as served (decoding under the
schema). Paired comparison on the same gold items: McNemar's exact test and a Newcombe interval.

Run the phases one at a time under the heavy lock (each stays well under 20 minutes):
    python bench/synth_experiment.py prepare      # projects, gold lock, real builds
    python bench/synth_experiment.py teach        # vLLM teacher up, synth for every N, teacher down
    python bench/synth_experiment.py train 25 real   # ... and 25 synth, 50 real, ... (one arm a call)
    python bench/synth_experiment.py table        # the README table from the results
Results go to out/synth/ (results.json; one project per size).
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SLMKIT_SHARED_DATA") or REPO.parent / "shared" / "data")
OUT = REPO / "out" / "synth"
SIZES = (25, 50, 100)
GOLD_PER_INTENT = 20
STEPS = 40
VLLM_PYTHON = Path(os.environ.get("SLMKIT_VLLM_PYTHON") or REPO / ".venv-vllm" / "bin" / "python")
TEACHER = "smollm2-135m-instruct"


def intents() -> list[str]:
    return json.loads((SHARED / "snips" / "labels.json").read_text())["intents"]


def snips(split: str) -> list[dict[str, Any]]:
    rows = []
    for line in (SHARED / "snips" / f"{split}.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        rows.append({"text": record["input"], "output": {"intent": json.loads(record["output"])["intent"]}})
    return rows


def stratified(rows: list[dict[str, Any]], seed: int) -> list[dict[str, Any]]:
    """Rows shuffled within each intent, then taken one intent at a time: every prefix is balanced."""
    by_intent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_intent[row["output"]["intent"]].append(row)
    rng = random.Random(seed)
    for group in by_intent.values():
        rng.shuffle(group)
    order = sorted(by_intent)
    return [by_intent[i][k] for k in range(max(map(len, by_intent.values()))) for i in order if k < len(by_intent[i])]


def config(source: str, *, gold_share: float, teacher_url: str = "http://127.0.0.1:1/v1") -> dict[str, Any]:
    names = intents()
    return {
        "base_model": "smollm2-135m-instruct",
        "task": {
            "name": "snips-intents",
            "description": "Name the intent of a voice-assistant request.",
            "input_fields": ["text"],
            "system_prompt": f"Name the intent of the voice-assistant request: one of {', '.join(names)}.",
            "output_schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["intent"],
                "properties": {"intent": {"enum": names}},
            },
            "label_field": "intent",
        },
        "data": {"sources": [{"path": source}], "split": {"validation": 0.1, "gold": gold_share, "seed": 13}},
        "train": {
            "method": "lora",
            "lora": {"r": 16, "alpha": 32, "dropout": 0.0, "target_modules": "all-linear"},
            "max_steps": STEPS,
            "batch_size": 8,
            "learning_rate": 0.001,
            "eval_every": STEPS,
            "early_stopping_patience": None,
        },
        "eval": {"gates": ["schema_validity >= 0.0"], "compare_base": False, "forgetting": False, "batch_size": 16},
        "synth": {
            "teacher": {
                "endpoint": teacher_url,
                "model": TEACHER,
                "temperature": 0.8,
                "max_tokens": 64,
                "concurrency": 4,
            },
            "kinds": ["paraphrase", "same_label", "near_miss"],
            "per_seed": 2,
            "min_real_share": 0.5,
        },
    }


def write(root: Path, values: dict[str, Any]) -> None:
    (root / "slmkit.yaml").write_text(yaml.safe_dump(values, sort_keys=False), encoding="utf-8")


def jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def load_results() -> dict[str, Any]:
    path = OUT / "results.json"
    return json.loads(path.read_text()) if path.exists() else {}


def save_results(results: dict[str, Any]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "results.json").write_text(json.dumps(results, indent=2))


def prepare() -> None:
    from slmkit.config import load_config
    from slmkit.data import run_data_build

    pool = snips("test")  # 100 per intent; a gold share of 0.2 draws 20 of each
    train = stratified(snips("train"), seed=13)
    results = load_results()
    for n in SIZES:
        root = OUT / f"snips-{n}"
        jsonl(root / "data" / "gold_pool.jsonl", pool)
        jsonl(root / "data" / "real.jsonl", train[:n])
        write(root, config("data/gold_pool.jsonl", gold_share=0.2))
        drawn = run_data_build(load_config(root))  # draws and locks the gold set
        write(root, config("data/real.jsonl", gold_share=0.2))
        built = run_data_build(load_config(root))
        results.setdefault(str(n), {})["data"] = {
            "gold_hash": drawn.gold_hash,
            "gold": built.counts["gold"],
            "real_version": built.version,
            "train": built.counts["train"],
            "validation": built.counts["validation"],
            "rejected": built.counts["rejected_by_reason"],
        }
        counts = built.counts
        print(f"N={n}: {counts['train']} train, {counts['validation']} validation, gold {counts['gold']}")
    hashes = {results[str(n)]["data"]["gold_hash"] for n in SIZES}
    assert len(hashes) == 1, "every size must grade on the same gold set"
    save_results(results)


def teach() -> None:
    from slmkit.config import load_config
    from slmkit.data.synth import run_synth
    from slmkit.models import resolve_base_model
    from slmkit.serve.processes import EngineProcess

    ref = resolve_base_model(TEACHER)
    argv = [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(ref.path),
            "--served-model-name", TEACHER, "--host", "127.0.0.1", "--dtype", "bfloat16", "--max-model-len", "2048",
            "--generation-config", "vllm", "--structured-outputs-config", '{"backend": "guidance"}',
            "--disable-uvicorn-access-log", "--uvicorn-log-level", "warning"]  # fmt: skip
    env = {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1", "HF_HUB_OFFLINE": "1"}
    teacher = EngineProcess("vLLM teacher", argv, env=env, log_path=OUT / "vllm.log", start_timeout_s=900)
    began = time.perf_counter()
    teacher.start()
    print(f"teacher up in {time.perf_counter() - began:.0f}s at {teacher.url}")
    results = load_results()
    try:
        for n in SIZES:
            root = OUT / f"snips-{n}"
            values = yaml.safe_load((root / "slmkit.yaml").read_text())
            values["synth"]["teacher"]["endpoint"] = f"{teacher.url}/v1"
            write(root, values)
            lines: list[str] = []
            result = run_synth(load_config(root), log=lines.append)
            lines += result.summary_lines()
            print(f"== N={n}\n" + "\n".join(lines))
            results[str(n)]["synth"] = {
                "version": result.version,
                "planned": result.planned,
                "accepted": result.accepted,
                "rejected": result.rejected,
                "by_label": result.by_label,
                "real_share": result.real_share,
                "calls": result.teacher.calls,
                "seconds": round(result.teacher.seconds, 1),
                "prompt_tokens": result.teacher.prompt_tokens,
                "completion_tokens": result.teacher.completion_tokens,
                "lines": lines,
            }
            save_results(results)
    finally:
        teacher.stop()


def train(n: int, arm: str) -> None:
    from slmkit.config import load_config
    from slmkit.eval import run_eval
    from slmkit.train import run_train

    results = load_results()
    entry = results[str(n)]
    version = entry["data"]["real_version"] if arm == "real" else entry["synth"]["version"]
    cfg = load_config(OUT / f"snips-{n}")
    trained = run_train(cfg, dataset_version=version, progress=False, log=lambda line: None)
    evaluated = run_eval(cfg, run_id=trained.run_id, progress=False, log=lambda line: None)
    report = json.loads(evaluated.report_path.read_text())
    metrics = report["metrics"]["adapter"]
    correct = [
        _label(p["adapter"]["text"]) == p["gold"]["intent"] for p in report["predictions"]
    ]  # per gold item, for the paired test
    entry[arm] = {
        "dataset": version,
        "run": trained.run_id,
        "train_examples": trained.metrics["train_examples"],
        "train_seconds": trained.metrics["seconds"],
        "val_loss": [trained.metrics["initial_val_loss"], trained.metrics["best_val_loss"]],
        "label_accuracy": metrics["label_accuracy"],
        "label_macro_f1": metrics["label_macro_f1"],
        "correct": correct,
    }
    save_results(results)
    acc = metrics["label_accuracy"]
    print(f"N={n} {arm}: {trained.metrics['train_examples']} examples, accuracy {acc['value']:.3f} {acc['ci95']}")


def _label(text: str) -> Any:
    try:
        return json.loads(text).get("intent")
    except (ValueError, AttributeError):
        return None


def table() -> None:
    from slmkit.eval.paired import mcnemar_exact, newcombe_paired

    results = load_results()
    print("| real rows (train + val) | arm | train rows (real + synthetic) | label accuracy [95% CI] | macro-F1 |")
    print("| --- | --- | --- | --- | --- |")
    notes = []
    for n in SIZES:
        entry = results.get(str(n), {})
        data = entry.get("data", {})
        for arm in ("real", "synth"):
            run = entry.get(arm)
            if run is None:
                continue
            acc, f1 = run["label_accuracy"], run["label_macro_f1"]
            synthetic = entry["synth"]["accepted"] if arm == "synth" else 0
            name = "real only" if arm == "real" else "real + synthetic"
            print(
                f"| {n} ({data['train']} + {data['validation']}) | {name} "
                f"| {data['train']} + {synthetic} | {acc['value']:.3f} [{acc['ci95'][0]:.3f}-{acc['ci95'][1]:.3f}] "
                f"| {f1['value']:.3f} [{f1['ci95'][0]:.3f}-{f1['ci95'][1]:.3f}] |"
            )
        if "real" in entry and "synth" in entry:
            a, b = entry["real"]["correct"], entry["synth"]["correct"]
            both = sum(x and y for x, y in zip(a, b, strict=True))
            gained = sum(y and not x for x, y in zip(a, b, strict=True))
            lost = sum(x and not y for x, y in zip(a, b, strict=True))
            neither = len(a) - both - gained - lost
            low, high = newcombe_paired(both, gained, lost, neither)
            diff = (gained - lost) / len(a)
            notes.append(
                f"N={n}: real + synthetic - real only = {diff:+.3f} [95% CI {low:+.3f} to {high:+.3f}], "
                f"{gained} items gained, {lost} lost, McNemar p = {mcnemar_exact(gained, lost):.3f}"
            )
    print()
    print("\n".join(notes))
    for n in SIZES:
        synth = results.get(str(n), {}).get("synth")
        if synth:
            reasons = ", ".join(f"{k} {v}" for k, v in synth["rejected"].items())
            print(
                f"N={n}: {synth['planned']} requests, {synth['accepted']} accepted ({reasons}); "
                f"{synth['calls']} teacher calls in {synth['seconds']}s, {synth['prompt_tokens']:,} + "
                f"{synth['completion_tokens']:,} tokens"
            )


if __name__ == "__main__":
    phase = sys.argv[1] if len(sys.argv) > 1 else "table"
    if phase == "prepare":
        prepare()
    elif phase == "teach":
        teach()
    elif phase == "train":
        train(int(sys.argv[2]), sys.argv[3])
    else:
        table()
