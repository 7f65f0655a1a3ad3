"""slmkit's defaults against the afternoon baseline: TF-IDF + a linear SVM, same split, same run.

For each shared routing set (IT tickets, HWU64, SNIPS intents from ../shared/data) and each base
model: a project whose training file is the set's train.jsonl and whose gold set is its
test.jsonl (data.sources[].role: gold), built, trained and evaluated with slmkit's defaults. The
baseline (word 1-2 + char 2-5 gram TF-IDF, LinearSVC) trains in the same run on the rows slmkit
trained and validated on (its build's train + validation splits) and is scored on the same gold
items. Both print accuracy and macro-F1 with 95% intervals, and their training and eval wall time.

One set at a time if you like (`--set hwu64`); every result is appended to --results and the
table is printed from all of them, so a long measurement can be split across runs. `--option
train.epochs=2` changes one setting (the row says so); `--train-rows` / `--gold-rows` draw
seeded stratified samples for quick measurements. Run under the shared lock:

    flock /tmp/slmkit-heavy.lock python bench/quality.py --set hwu64

Eval trims what does not bear on the comparison: no base-model side, only the as-served
decoding, no forgetting check. SNIPS is scored on its intent (the baseline's task): its rows are
converted to {"intent": ...}.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SLMKIT_SHARED_DATA") or REPO.parent / "shared" / "data")
RESULTS = REPO / "bench" / "results" / "quality.jsonl"
TARGETS = {"it_tickets": 0.835, "hwu64": 0.882, "snips": 0.986}  # the baseline's accuracy in shared/data/README

SETS: dict[str, dict[str, Any]] = {
    "it_tickets": {
        "field": "queue",
        "name": "it-tickets",
        "system": "Route the IT service-desk ticket to the team queue that should handle it. "
        "The ticket text is lower-cased with stop words removed.",
    },
    "hwu64": {
        "field": "intent",
        "name": "hwu64",
        "system": "Classify the request to a home assistant into its intent.",
    },
    "snips": {
        "field": "intent",
        "name": "snips-intents",
        "system": "Classify the voice-assistant request into its intent.",
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", action="append", choices=sorted(SETS), help="Set(s) to run (default: all three).")
    parser.add_argument("--base", action="append", help="Base model(s) (default: smollm2-135m-instruct).")
    parser.add_argument("--option", action="append", default=[], help="dotted.key=YAML value, e.g. train.epochs=2")
    parser.add_argument("--train-rows", type=int, help="A seeded stratified sample of the training file.")
    parser.add_argument("--gold-rows", type=int, help="A seeded stratified sample of the test file.")
    parser.add_argument("--tag", default="defaults", help="Name of this configuration in the table.")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, default=Path("/tmp/slmkit-quality"))
    parser.add_argument("--table", action="store_true", help="Only print the table of recorded results.")
    parser.add_argument("--baseline-only", action="store_true", help="Only the TF-IDF + SVM baseline (seconds).")
    args = parser.parse_args()
    if not args.table:
        for name in args.set or list(SETS):
            for base in args.base or ["smollm2-135m-instruct"]:
                record = run_one(name, base, args)
                args.results.parent.mkdir(parents=True, exist_ok=True)
                with args.results.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(record) + "\n")
                print_table([record], title="this run")
    if args.results.exists():
        records = [json.loads(line) for line in args.results.read_text().splitlines() if line.strip()]
        print_table(records, title=f"all recorded runs ({args.results})")


# --- one set ------------------------------------------------------------------------------


def run_one(name: str, base: str, args: argparse.Namespace) -> dict[str, Any]:
    root, counts = write_project(name, base, args.work / f"{name}-{base.replace('/', '_')}-{args.tag}", args)
    print(f"== {name} on {base} [{args.tag}]: {counts[0]} train rows, {counts[1]} test rows, {counts[2]} labels")
    return measure(root, name, base, args, counts[2])


def write_project(name: str, base: str, root: Path, args: argparse.Namespace) -> tuple[Path, tuple[int, int, int]]:
    """A project at `root` for set `name`: its train file as the training source, its test file as gold,
    slmkit's defaults but for `args.option`; (root, (train rows, test rows, labels))."""
    spec = SETS[name]
    field = spec["field"]
    train = _rows(SHARED / name / "train.jsonl", field)
    test = _rows(SHARED / name / "test.jsonl", field)
    labels = sorted({r["output"][field] for r in train + test})  # of the whole set, however sampled
    if args.train_rows:
        train = _sample(train, args.train_rows)
    if args.gold_rows:
        test = _sample(test, args.gold_rows)
    shutil.rmtree(root, ignore_errors=True)
    (root / "data").mkdir(parents=True)
    _write_jsonl(root / "data" / "train.jsonl", train)
    _write_jsonl(root / "data" / "test.jsonl", test)
    project: dict[str, Any] = {
        "base_model": base,
        "task": {
            "name": spec["name"],
            "input_fields": ["text"],
            "system_prompt": spec["system"],
            "output_schema": {
                "type": "object",
                "additionalProperties": False,
                "required": [field],
                "properties": {field: {"enum": labels}},
            },
            "label_field": field,
        },
        "data": {
            "sources": [{"path": "data/train.jsonl"}, {"path": "data/test.jsonl", "role": "gold"}],
            "pii": {"enabled": False},  # public benchmark text: nothing to replace, and the same rows as the baseline
        },
        "eval": {"compare_base": False, "decoding": "as_served", "forgetting": False},
    }
    for option in args.option:
        key, _, value = option.partition("=")
        target = project
        *parents, last = key.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[last] = yaml.safe_load(value)
    (root / "slmkit.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    return root, (len(train), len(test), len(labels))


def measure(root: Path, name: str, base: str, args: argparse.Namespace, n_labels: int) -> dict[str, Any]:
    from slmkit.config import load_config
    from slmkit.data import open_dataset, run_data_build
    from slmkit.registry import Registry

    config = load_config(root)
    began = time.perf_counter()
    built = run_data_build(config)
    build_s = time.perf_counter() - began
    print("\n".join(built.summary_lines()[:3]))
    dataset = open_dataset(config, Registry(config.state_dir), built.version)
    field = config.task.label_field
    fit = [(r.input, r.output[field]) for split in ("train", "validation") for r in dataset.examples(split)]
    gold = [(r.input, r.output[field]) for r in dataset.examples("gold")]
    record: dict[str, Any] = {
        "set": name,
        "base": base,
        "tag": args.tag,
        "options": args.option,
        "labels": n_labels,
        "train_rows": built.counts["train"],
        "validation_rows": built.counts["validation"],
        "gold_items": len(gold),
        "build_s": round(build_s, 1),
        "baseline": baseline(fit, gold),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    b = record["baseline"]
    print(f"baseline: accuracy {b['accuracy']:.3f} macro-F1 {b['macro_f1']:.3f} (fit {b['train_s']:.1f}s)")
    if args.baseline_only:
        return record
    record["slmkit"] = slmkit_side(config)
    return record


def slmkit_side(config: Any) -> dict[str, Any]:
    from slmkit.eval import run_eval
    from slmkit.train import run_train

    began, cpu_began = time.perf_counter(), _cpu_seconds()
    trained = run_train(config, progress=False)  # the lines before and after training say what it did
    train_wall = time.perf_counter() - began
    train_cpu = cpu_share(_cpu_seconds() - cpu_began, train_wall)
    print("\n".join(trained.summary_lines()))
    began, cpu_began = time.perf_counter(), _cpu_seconds()
    evaluated = run_eval(config, run_id=trained.run_id)
    eval_wall = time.perf_counter() - began
    eval_cpu = cpu_share(_cpu_seconds() - cpu_began, eval_wall)
    print("\n".join(evaluated.summary_lines()[:4]))
    m = evaluated.metrics["adapter"]
    report = json.loads(evaluated.report_path.read_text())
    metrics = trained.metrics
    return {
        "accuracy": m["label_accuracy"].value,
        "accuracy_ci": [m["label_accuracy"].low, m["label_accuracy"].high],
        "macro_f1": m["label_macro_f1"].value,
        "macro_f1_ci": [m["label_macro_f1"].low, m["label_macro_f1"].high],
        "schema_validity": m["schema_validity"].value,
        "train_s": metrics["seconds"],  # the training loop (validation and checkpoints excluded)
        "train_wall_s": round(train_wall, 1),  # run_train whole: load, drift check, validations, save
        "eval_s": report["timing"]["adapter"]["seconds"],
        "eval_wall_s": round(eval_wall, 1),
        # This process's CPU time over wall time x cores: near 1.0 when it had the machine to itself.
        # Another process computing beside it (outside the shared lock) shows here, and costs far more
        # than its share: torch's threads wait for each other at every parallel region.
        "train_cpu_share": train_cpu,
        "eval_cpu_share": eval_cpu,
        "steps": metrics["steps"],
        "epochs": metrics["epochs"],
        "tokens": metrics["tokens"],
        "tokens_per_s": metrics["tokens_per_s"],
        "stopped_early": metrics["stopped_early"],
        "best_step": metrics["best_step"],
        "prompt": metrics.get("prompt_cost"),
        "early_stopping": metrics.get("early_stopping"),
        "refusal_threshold": (report.get("label_scoring") or {}).get("threshold"),
        "run_id": trained.run_id,
    }


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_share(cpu_seconds: float, wall_seconds: float) -> float:
    """CPU time / (wall time x cores): how much of the machine the measured stage had."""
    return round(cpu_seconds / max(wall_seconds * (os.cpu_count() or 1), 1e-9), 3)


# --- the baseline --------------------------------------------------------------------------


def baseline(fit: list[tuple[str, Any]], gold: list[tuple[str, Any]]) -> dict[str, Any]:
    """TF-IDF (word 1-2 + char 2-5 grams, sublinear tf) + LinearSVC, on `fit`, scored on `gold`."""
    from scipy.sparse import hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    began = time.perf_counter()
    words = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=1)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=1)
    texts = [t for t, _ in fit]
    features = hstack([words.fit_transform(texts), chars.fit_transform(texts)]).tocsr()
    model = LinearSVC(C=1.0).fit(features, [y for _, y in fit])
    train_s = time.perf_counter() - began
    began = time.perf_counter()
    gold_texts = [t for t, _ in gold]
    predicted = model.predict(hstack([words.transform(gold_texts), chars.transform(gold_texts)]).tocsr())
    eval_s = time.perf_counter() - began
    return {**scores([y for _, y in gold], list(predicted)), "train_s": round(train_s, 2), "eval_s": round(eval_s, 2)}


def scores(gold: list[Any], predicted: list[Any]) -> dict[str, Any]:
    """Accuracy (Wilson interval) and macro-F1 (bootstrap interval), as slmkit eval computes them."""
    from slmkit.eval.metrics import bootstrap, macro_f1, wilson

    labels = sorted(set(gold) | set(predicted))
    accuracy = wilson(sum(g == p for g, p in zip(gold, predicted, strict=True)), len(gold))

    def f1(idx: Any) -> float:
        return macro_f1([gold[i] for i in idx], [predicted[i] for i in idx], labels)

    low, high = bootstrap(f1, len(gold), rounds=1000)
    return {
        "accuracy": accuracy.value,
        "accuracy_ci": [accuracy.low, accuracy.high],
        "macro_f1": f1(range(len(gold))),
        "macro_f1_ci": [low, high],
    }


# --- data ----------------------------------------------------------------------------------


def _rows(path: Path, field: str) -> list[dict[str, Any]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            output = json.loads(record["output"]) if isinstance(record["output"], str) else record["output"]
            rows.append({"text": record["input"], "output": {field: output[field]}})
    return rows


def _sample(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    from slmkit.data.split import stratified_sample

    keys = [json.dumps(r, sort_keys=True) for r in rows]
    labels = [json.dumps(r["output"], sort_keys=True) for r in rows]
    return [rows[i] for i in stratified_sample(keys, labels, n, seed=7)]


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


# --- the table -----------------------------------------------------------------------------


def print_table(records: list[dict[str, Any]], *, title: str) -> None:
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for record in records:
        latest[(record["set"], record["base"], record["tag"])] = record
    print(f"\n{title}")
    header = (
        f"{'set':<11} {'base':<22} {'config':<14} {'gold':>5} {'model':<8} {'accuracy [95% CI]':<22} "
        f"{'macro-F1 [95% CI]':<22} {'train':>8} {'eval':>7}"
    )
    print(header)
    print("-" * len(header))
    for (name, base, tag), r in sorted(latest.items()):
        b = r["baseline"]
        rows = [("tfidf+svm", b, b["train_s"], b["eval_s"])]
        if "slmkit" in r:
            s = r["slmkit"]
            rows.append(("slmkit", s, s["train_wall_s"], s["eval_wall_s"]))
        for model, m, train_s, eval_s in rows:
            print(
                f"{name:<11} {base[:22]:<22} {tag[:14]:<14} {r['gold_items']:>5} {model:<8} "
                f"{_ci(m['accuracy'], m['accuracy_ci']):<22} {_ci(m['macro_f1'], m['macro_f1_ci']):<22} "
                f"{_duration(train_s):>8} {_duration(eval_s):>7}"
            )
        if "slmkit" in r:
            verdict = "meets" if r["slmkit"]["accuracy"] >= b["accuracy"] else "BELOW"
            within = r["slmkit"]["train_wall_s"] <= 45 * 60
            share = r["slmkit"].get("train_cpu_share")
            shared = ""
            if share is not None:
                shared = f"; CPU share {share:.2f}" + (
                    " (the machine was shared: times too long)" if share < 0.85 else ""
                )
            print(
                f"{'':<11} slmkit - baseline accuracy {r['slmkit']['accuracy'] - b['accuracy']:+.3f} ({verdict} the "
                f"baseline); training {'within' if within else 'OVER'} 45 min; {r['slmkit']['epochs']} epochs, "
                f"{r['slmkit']['tokens_per_s']:.0f} tokens/s{shared}"
            )


def _ci(value: float, ci: list[float]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.3f} [{ci[0]:.3f}-{ci[1]:.3f}]"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{seconds / 60:.1f}m"


if __name__ == "__main__":
    sys.exit(main())
