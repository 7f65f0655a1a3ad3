"""How fast the console renders each page on a big registry: 100 releases, 1,000 runs, 1,000,000 requests.

Both registries start from a real `slmkit data build` of the example (its data card and locked gold
set); the records after it are written through the registry's own API: each run with a 67-step
metrics.jsonl and an eval report (104 gold items, predictions, confusion, a regression list against
production), every tenth run released (rehearsal evidence, `production` and `staging` aliases), 40
review verdicts on the production release. The request log holds 1,000,000 rows over the last 24
hours (9 in 10 answered by production, the rest by staging), every signal filled in: label,
confidence, latencies, and an int8 embedding of a real ticket (so input drift has real work), with
the release dataset's input drift reference built as `slmkit release` builds it and the alert rules
evaluated once. The baseline is the same pages on a small registry (2 runs, 1 release, 1,000
requests) measured in the same run. Each page is fetched over HTTP from a running console: one
warm-up (the monitoring pages: until their numbers are computed), then the median and the slowest
of 7. Target: every page under 300 ms.

The monitoring pages show a result computed on a background thread (see slmkit.ui.monitoring), so
the bench also reports how long each computation took, and what a visitor sees when traffic arrives:
the fetch that finds the log grown (it is answered from the last result while the next computes),
and the fetches made while that computation runs.

    python bench/console_pages.py [--releases 100] [--runs 1000] [--requests 1000000]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import EXAMPLE

TARGET_MS = 300.0
TASK = "support-tickets"


def build_project(root: Path) -> Any:
    """The example project (semantic dedup off) with its dataset built for real."""
    from slmkit.config import load_config
    from slmkit.data import run_data_build

    shutil.copytree(EXAMPLE / "data", root / "data")
    config = yaml.safe_load((EXAMPLE / "slmkit.yaml").read_text())
    config["data"]["dedup"]["semantic"]["enabled"] = False
    (root / "slmkit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    loaded = load_config(root)
    run_data_build(loaded)
    return loaded


def eval_report(gold: list[dict[str, Any]], run_id: str, seed: int, dataset: Any) -> dict[str, Any]:
    """A report shaped as `slmkit eval` writes it: metrics per side, gates, confusion, predictions, regression."""
    rng = random.Random(seed)
    labels = ["billing", "shipping", "returns", "technical", "account", "out_of_scope"]
    predictions, confusion, right = [], {g: {} for g in labels}, 0
    for row in gold:
        answer = dict(row["output"])
        if rng.random() < 0.15:
            answer["category"] = rng.choice(labels)
        exact = answer == row["output"]
        right += exact
        gold_label, said = row["output"]["category"], answer["category"]
        confusion.setdefault(gold_label, {})[said] = confusion.get(gold_label, {}).get(said, 0) + 1
        side = {"text": json.dumps(answer), "valid": True, "exact": exact, "confidence": rng.uniform(0.3, 1.0)}
        base = {"text": "I can help with that.", "valid": False, "exact": False, "confidence": 0.2}
        predictions.append(
            {"id": row["id"], "input": row["input"], "gold": row["output"], "adapter": side, "base": base}
        )
    share = right / len(gold)
    metric = {"value": share, "ci95": [share - 0.05, share + 0.05]}
    ids = [p["id"] for p in predictions]
    return {
        "kind": "slmkit.eval_report",
        "task": TASK,
        "run_id": run_id,
        "dataset_version": dataset.version,
        "gold_hash": dataset.gold_hash,
        "items": len(gold),
        "engine": "transformers",
        "metrics": {
            "base": {m: {"value": 0.0} for m in ("schema_validity", "exact_match", "label_accuracy")},
            "adapter": {"schema_validity": {"value": 1.0}, "exact_match": metric, "label_accuracy": metric},
        },
        "confusion": {"adapter": confusion},
        "gates": [
            {
                "gate": "schema_validity >= 0.9",
                "metric": "schema_validity",
                "observed": 1.0,
                "threshold": 0.9,
                "ci95": [0.96, 1.0],
                "passed": True,
            }
        ],
        "passed": True,
        "regression": {
            "production": {
                "alias": "production",
                "against": f"{TASK}@1",
                "paired_items": len(gold),
                "unpaired_items": 0,
                "error": None,
                "metrics": {
                    "exact_match": {
                        "candidate": share,
                        "release": 0.8,
                        "difference": share - 0.8,
                        "ci95": [-0.1, 0.1],
                        "method": "newcombe",
                        "p_value": 0.5,
                        "right_to_wrong": ids[:7],
                        "wrong_to_right": ids[7:12],
                    }
                },
            }
        },
        "predictions": predictions,
    }


def fill(config: Any, *, runs: int, releases: int, requests: int) -> dict[str, str]:
    """Runs, evals, releases, verdicts and request rows through the registry; returns ids the pages use."""
    from slmkit.registry import NewEvidence, Registry

    registry = Registry(config.state_dir)
    dataset = registry.get_dataset(task=TASK)
    folder = registry.store.path(dataset.digest)
    gold = [json.loads(line) for line in (folder / "gold.jsonl").read_text().splitlines() if line.strip()]
    resolved = config.resolved()
    reports = []
    for seed in range(10):  # ten distinct reports; the store keeps each once
        path = config.state_dir / f"report-{seed}.json"
        path.write_text(json.dumps(eval_report(gold, f"run-{seed}", seed, dataset)))
        reports.append((registry.store.put_file(path), json.loads(path.read_text())))
    run_ids = []
    every = max(runs // max(releases, 1), 1)
    for i in range(runs):
        run_id = f"20261201-{i:06d}-bench"
        registry.start_run(run_id, TASK, dataset.version, {"spec": "smollm2-135m-instruct"}, resolved)
        metrics_dir = config.state_dir / "runs" / run_id
        metrics_dir.mkdir(parents=True, exist_ok=True)
        lines = [{"step": s, "loss": 2.0 / s} | ({"val_loss": 1.8 / s} if s % 20 == 0 else {}) for s in range(1, 68)]
        (metrics_dir / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
        metrics = {"steps": 67, "tokens": 208_369, "tokens_per_s": 273.0, "initial_val_loss": 1.036,
                   "best_val_loss": 0.057, "best_step": 67}  # fmt: skip
        registry.finish_run(run_id, "a" * 64, metrics)
        digest, report = reports[i % len(reports)]
        registry.record_eval(TASK, run_id, digest, dataset.gold_hash, True, {"metrics": report["metrics"]})
        run_ids.append(run_id)
        if i % every == 0 and len(registry.list_releases(TASK)) < releases:
            values = {side: {m: v["value"] for m, v in ms.items()} for side, ms in report["metrics"].items()}
            registry.create_release(
                name=TASK, run_id=run_id, adapter_digest="a" * 64, base_model={"spec": "smollm2-135m-instruct"},
                dataset_version=dataset.version, gold_hash=dataset.gold_hash, eval_report_digest=digest,
                config=resolved, note=f"bench release {i // every + 1}",
                provenance={
                    "eval": {"metrics": values, "gates": report["gates"]},
                    "dataset": {"counts": dataset.counts},
                },
                evidence=[NewEvidence("rehearsal", True, {"summary": "16/16 answers matched its eval"})],
            )  # fmt: skip
    top = max(r.version for r in registry.list_releases(TASK))
    if top > 1:
        registry.set_alias(TASK, "staging", top - 1, reason="bench")
    production = registry.current(TASK, "production")
    assert production is not None
    report = reports[run_ids.index(production.run_id) % len(reports)][1]
    for p in report["predictions"][:40]:
        registry.record_verdict(
            TASK, production.version, str(p["id"]), "accept", report_digest=production.eval_report_digest
        )
    registry.close()
    fill_requests(config, requests, [(TASK, top), (TASK, max(top - 1, 1))], dataset.version)
    return {"run": production.run_id, "version": str(production.version), "dataset": dataset.version}


LABELS = ("billing", "shipping", "returns", "technical", "account", "out_of_scope")
MIX = (0.2, 0.2, 0.18, 0.2, 0.15, 0.07)


def fill_requests(config: Any, count: int, releases: list[tuple[str, int]], dataset_version: str) -> None:
    """`count` rows over the last 24 hours (9 in 10 for the first release), then the alert rules judged once."""
    import numpy as np

    from slmkit.monitor.alerts import evaluate_alerts
    from slmkit.monitor.embedding import InputEmbedder, quantize, reference_for
    from slmkit.monitor.requests import RequestLog
    from slmkit.registry import Registry
    from slmkit.task import Task

    task = Task.from_config(config)
    traffic = [json.loads(line) for line in (EXAMPLE / "traffic" / "unshifted.jsonl").read_text().splitlines()]
    embedder = InputEmbedder()
    blobs = quantize(embedder([task.render_input(r) for r in traffic]))
    with Registry(config.state_dir) as registry:  # as `slmkit release` does, so the pages only read it
        reference_for(registry, dataset_version, embedder, size=config.monitor.drift.reference_size)
    RequestLog(config.state_dir / "requests.db").close()  # the schema, by its own migrations
    conn = sqlite3.connect(config.state_dir / "requests.db")
    rng = np.random.default_rng(0)
    end = datetime.now(UTC) - timedelta(seconds=30)
    columns = ("ts, request_id, model_ref, release_name, release_version, latency_ms, prompt_tokens, "
               "completion_tokens, valid, refused, replaced, attempts, escalate, outcome, label, null_fields, "
               "confidence, ttft_ms, itl_ms, embedding, novelty, flagged, api_key")  # fmt: skip
    sql = f"INSERT INTO requests ({columns}) VALUES ({', '.join('?' * 23)})"
    for lo in range(0, count, 50_000):
        n = min(50_000, count - lo)
        offsets = np.sort(rng.uniform(0, 86400, n))
        labels = rng.choice(len(LABELS), n, p=MIX)
        error = rng.random(n) < 0.01
        rows = []
        for i in range(n):
            ts = (end - timedelta(seconds=86400 - float(offsets[i]))).isoformat(timespec="milliseconds")
            name, version = releases[0] if rng.random() < 0.9 or len(releases) == 1 else releases[1]
            ok = not error[i]
            rows.append((
                ts.replace("+00:00", "Z"), f"chatcmpl-{lo + i}", name, name, version, float(rng.gamma(4, 300)),
                180, 40, int(rng.random() < 0.98) if ok else None, int(labels[i] == 5), 0, 1,
                int(rng.random() < 0.1), "ok" if ok else "error", LABELS[labels[i]] if ok else None, 1,
                float(rng.uniform(0.4, 1.0)) if ok else None, float(rng.gamma(3, 100)), float(rng.gamma(5, 5)),
                blobs[(lo + i) % len(blobs)] if ok else None, float(rng.uniform(0, 0.5)), 0, "support-app",
            ))  # fmt: skip
        conn.executemany(sql, rows)
        conn.commit()
    conn.close()
    evaluate_alerts(config)


def pages(ids: dict[str, str]) -> list[str]:
    v = int(ids["version"])
    return [
        "/", "/datasets", f"/datasets/{ids['dataset']}", f"/datasets/{ids['dataset']}/card", "/runs", "/runs?page=19",
        f"/runs/{ids['run']}", f"/runs/{ids['run']}/eval", "/releases", f"/releases/{v}",
        f"/releases/diff?a={max(v - 1, 1)}&b={v}", "/audit", "/audit?all=1", "/review", "/login", *MONITORING,
        f"/monitoring?span=24h&release={v}",
    ]  # fmt: skip


MONITORING = ["/monitoring", "/monitoring?span=6h", "/monitoring?span=1h"]


def fetch(url: str) -> tuple[float, str]:
    """(milliseconds, body) of one GET."""
    began = time.perf_counter()
    with urllib.request.urlopen(url, timeout=120) as response:
        assert response.status == 200, url
        body = response.read().decode()
    return (time.perf_counter() - began) * 1000, body


def computed(url: str) -> float:
    """Fetch a monitoring page until it shows numbers that are not being updated; the seconds they took."""
    while True:
        _, body = fetch(url)
        found = re.search(r"computed \d+ s ago in ([\d.]+) s\.", body)
        if found and "Updating" not in body:
            return float(found.group(1))
        time.sleep(0.2)


def measure(
    config: Any, paths: list[str], version: int, repeats: int = 7
) -> tuple[dict[str, tuple[float, float]], dict[str, Any]]:
    """path -> (median ms, slowest ms) over HTTP from a running console; and what the monitoring page did
    (each computation's seconds, then 100 new requests for release `version`: see the module docstring)."""
    from slmkit.monitor.requests import RequestLog, RequestRecord
    from slmkit.ui import start_console

    out, live = {}, {}
    with start_console(config) as console:
        for path in paths:
            if path.startswith("/monitoring"):
                live[f"compute {path}"] = computed(console.url + path)
            else:
                fetch(console.url + path)  # the first fetch warms caches
            times = [fetch(console.url + path)[0] for _ in range(repeats)]
            out[path] = (statistics.median(times), max(times))
        # Traffic arrives: the next view finds the log grown, is answered from the last result and starts
        # the next computation; the views made meanwhile (this page, the overview) wait on nothing.
        with RequestLog(config.state_dir / "requests.db") as log:
            log.append([RequestRecord(f"new-{i}", TASK, 100.0, "ok", TASK, version) for i in range(100)])
        live["grown ms"], _ = fetch(console.url + MONITORING[0])
        during: list[float] = []
        began = time.perf_counter()
        while True:
            ms, body = fetch(console.url + MONITORING[0])
            if "Updating" not in body:
                break
            during += [ms, fetch(console.url + "/")[0]]
            time.sleep(0.1)
        live["recompute s"] = time.perf_counter() - began
        live["during"] = during
    return out, live


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--releases", type=int, default=100)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="slmkit-console-bench-") as tmp:
        began = time.perf_counter()
        small = build_project(Path(tmp) / "small")
        big = build_project(Path(tmp) / "big")
        small_ids = fill(small, runs=2, releases=1, requests=1_000)
        big_ids = fill(big, runs=args.runs, releases=args.releases, requests=args.requests)
        print(f"filled: {args.releases} releases, {args.runs} runs, {args.requests:,} requests "
              f"in {time.perf_counter() - began:.0f}s")  # fmt: skip
        baseline, small_live = measure(small, pages(small_ids), int(small_ids["version"]))
        loaded, big_live = measure(big, pages(big_ids), int(big_ids["version"]))
    print(f"{'page':<44}{'small ms':>10}{'big ms':>10}{'slowest':>10}{'ratio':>8}  target {TARGET_MS:.0f} ms")
    worst = 0.0
    for (_, (base_ms, _)), (big_path, (big_ms, slow_ms)) in zip(baseline.items(), loaded.items(), strict=True):
        shown = big_path if len(big_path) < 43 else big_path[:40] + "..."
        verdict = "ok" if slow_ms < TARGET_MS else "OVER"
        print(f"{shown:<44}{base_ms:>10.1f}{big_ms:>10.1f}{slow_ms:>10.1f}{big_ms / base_ms:>7.2f}x  {verdict}")
        worst = max(worst, slow_ms)
    print(f"slowest page fetch on the big registry: {worst:.1f} ms ({'under' if worst < TARGET_MS else 'OVER'} "
          f"the {TARGET_MS:.0f} ms target)")  # fmt: skip
    print("\nthe monitoring page's computations (background thread), seconds:")
    print(f"{'page':<44}{'small s':>10}{'big s':>10}")
    # The same pages in the same order; their paths differ where they name the release (1 vs 100).
    small_keys = [k for k in small_live if k.startswith("compute ")]
    big_keys = [k for k in big_live if k.startswith("compute ")]
    for small_key, key in zip(small_keys, big_keys, strict=True):
        path = key.removeprefix("compute ")
        shown = path if len(path) < 43 else path[:40] + "..."
        print(f"{shown:<44}{small_live[small_key]:>10.2f}{big_live[key]:>10.2f}")
    for name, live in (("small", small_live), ("big", big_live)):
        during = live["during"]
        shown = f"median {statistics.median(during):.1f} ms, slowest {max(during):.1f} ms" if during else "none"
        print(f"{name}: 100 new requests; the next view of /monitoring took {live['grown ms']:.1f} ms (last result "
              f"shown); the new numbers were ready {live['recompute s']:.1f} s later; {len(during)} page views "
              f"meanwhile (/monitoring and /): {shown}")  # fmt: skip


if __name__ == "__main__":
    main()
