"""Serving under load: the gateway against the engine it fronts, the same clients, in one run.

Trains a short SmolLM2-135M-Instruct adapter on the example project and releases it, then
drives N concurrent clients for T seconds twice: (a) straight into the engine (the batching
worker the gateway submits to, no HTTP, no parsing, no guard bookkeeping outside the engine,
no request log) and (b) through the gateway over HTTP, as an OpenAI client calls it. The
gateway's overhead is what (b) costs beyond (a): requests/s and p50 latency. Memory is the
process's RSS, sampled through the gateway run (the last sample minus the one a fifth in).
The gateway run records its latency as the release's evidence, as `slmkit loadtest` does.

    .venv/bin/python bench/serve_load.py [--clients 16] [--seconds 60] [--steps 8]
    .venv/bin/python bench/serve_load.py --monitoring [--rounds 2]

Targets on this machine: overhead at most 5% of throughput and 10 ms of p50 latency, no
errors at 16 clients, flat memory over `--seconds 600`.

`--monitoring` measures what monitoring costs instead: the gateway with monitoring off
(monitor.embeddings false, no alert timer, no capture) against the gateway with it on (an
int8 MiniLM embedding of every redacted input and its novelty, 10% captured and redacted, the
example's alert rules every `--every` seconds including the drift tests), alternating
off / on for `--rounds` rounds so a neighbour's load falls on both alike. Target: at most 3%
lower throughput. Both record each answer's confidence (the token log-probabilities), which
serving always does now.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import EXAMPLE, example_rows, smollm2, threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=10.0)
    parser.add_argument("--steps", type=int, default=8, help="training steps of the released adapter")
    parser.add_argument(
        "--gateway-only", action="store_true", help="skip the engine-direct run (a long memory check of the gateway)"
    )
    parser.add_argument("--monitoring", action="store_true", help="gateway with monitoring off vs on (see above)")
    parser.add_argument("--rounds", type=int, default=2, help="--monitoring: off/on rounds")
    parser.add_argument("--every", type=float, default=10.0, help="--monitoring: seconds between alert evaluations")
    args = parser.parse_args()
    if args.monitoring:
        return _monitoring(args)

    from slmkit.serve import start_server
    from slmkit.serve.engine import Job
    from slmkit.serve.load import LoadStats, drive, http_sender

    smollm2()
    n_threads = threads()
    _, rows = example_rows(64)
    inputs = [text for text, _ in rows]
    with tempfile.TemporaryDirectory(prefix="slmkit-bench-serve-") as tmp:
        config, release = _released_project(Path(tmp), args.steps, args.clients)
        with start_server(config, release=str(release.version)) as handle:
            service = handle.service
            pinned = service.resolve(release.ref)
            limit = config.serve.max_new_tokens

            def direct(text: str) -> tuple[bool, int, str | None, str | None]:
                job = Job(uuid.uuid4().hex, release.ref, pinned, text, limit)
                outcome = service.engine.submit(job).result()
                ok = outcome.guard.output is not None
                return ok, outcome.completion_tokens, None if ok else "no_valid_answer", outcome.release.ref

            load = f"{args.clients} clients x {args.seconds:g}s (+{args.warmup:g}s warm-up)"
            if not args.gateway_only:
                print(f"engine directly: {load}", flush=True)
            engine = (
                LoadStats(args.clients, 0.0)
                if args.gateway_only
                else drive(direct, inputs, clients=args.clients, seconds=args.seconds, warmup_s=args.warmup)
            )
            before = service.engine.stats()
            print(f"gateway over HTTP: {load}", flush=True)
            gateway = drive(
                http_sender(handle.url, release.ref),
                inputs,
                clients=args.clients,
                seconds=args.seconds,
                warmup_s=args.warmup,
            )
            batches = service.engine.stats()
            for label, (a, b) in {
                "engine": ({"batches": 0, "requests": 0}, before),
                "gateway": (before, batches),
            }.items():
                n = b["batches"] - a["batches"]
                print(f"{label}: {n} batches, {(b['requests'] - a['requests']) / max(n, 1):.1f} requests per batch")
        _record(config, release, gateway)

    print(
        f"\nSmolLM2-135M-Instruct + LoRA ({args.steps} steps), transformers engine, {n_threads} threads, "
        f"max_batch_size {args.clients}, max_new_tokens {config.serve.max_new_tokens}; "
        f"largest batch {batches['largest_batch']}"
    )
    _table({"gateway (HTTP)": gateway} if args.gateway_only else {"engine directly": engine, "gateway (HTTP)": gateway})
    rss = gateway.rss_mib
    if rss:
        marks = [rss[round(i * (len(rss) - 1) / 5)] for i in range(6)]
        print("gateway RSS over the run: " + ", ".join(f"{t:.0f}s {m:.0f} MiB" for t, m in marks))
    if args.gateway_only:
        growth = gateway.summary()["rss_growth_mib"]
        print(f"gateway errors {gateway.summary()['errors']}; RSS growth after the first fifth {growth:+.1f} MiB")
        return
    e, g = engine.summary(), gateway.summary()
    ratio = g["requests_per_s"] / e["requests_per_s"] if e["requests_per_s"] else float("nan")
    print(
        f"\ngateway / engine throughput: {ratio:.3f} (overhead {100 * (1 - ratio):+.1f}%, target <= 5%); "
        f"p50 overhead {g['p50_ms'] - e['p50_ms']:+.1f} ms (target <= 10 ms); "
        f"gateway errors {g['errors']} (target 0); RSS growth over the gateway run {g['rss_growth_mib']:+.1f} MiB"
    )


def _monitoring(args: argparse.Namespace) -> None:
    """The gateway with monitoring off and on, alternating, the same clients and inputs."""
    from slmkit.monitor.embedding import InputEmbedder, reference_for
    from slmkit.registry import Registry
    from slmkit.serve import start_server
    from slmkit.serve.load import LoadStats, drive, http_sender

    smollm2()
    n_threads = threads()
    _, rows = example_rows(64)
    inputs = [text for text, _ in rows]
    with tempfile.TemporaryDirectory(prefix="slmkit-bench-serve-") as tmp:
        config, release = _released_project(Path(tmp), args.steps, args.clients)
        with Registry(config.state_dir) as registry:  # as `slmkit release` does: the drift reference is ready
            reference_for(registry, release.dataset_version, InputEmbedder(), size=config.monitor.drift.reference_size)
        off = config.monitor.model_copy(update={"embeddings": False, "evaluate_every_s": 0.0})
        capture = config.monitor.capture.model_copy(update={"share": 0.1})
        on = config.monitor.model_copy(update={"embeddings": True, "evaluate_every_s": args.every, "capture": capture})
        modes = {"monitoring off": off, "monitoring on": on}
        totals: dict[str, list[LoadStats]] = {mode: [] for mode in modes}
        for round_ in range(args.rounds):
            for mode, monitor in modes.items():
                print(f"round {round_ + 1}, {mode}: {args.clients} clients x {args.seconds:g}s", flush=True)
                with start_server(config.model_copy(update={"monitor": monitor}), release=str(release.version)) as h:
                    totals[mode].append(
                        drive(
                            http_sender(h.url, release.ref), inputs, clients=args.clients, seconds=args.seconds,
                            warmup_s=args.warmup,
                        )
                    )  # fmt: skip
                    h.service.recorder.flush(timeout=300)
                    loop = h.service.monitoring.alerts
                    skipped = h.service.recorder.sink.skipped_embeddings
                if mode == "monitoring on":
                    print(f"  embeddings skipped under backlog: {skipped}; alert loop ran: {loop.last is not None}")
    print(
        f"\nSmolLM2-135M-Instruct + LoRA ({args.steps} steps), transformers engine, {n_threads} threads, "
        f"max_batch_size {args.clients}, {args.rounds} rounds of {args.seconds:g}s per mode"
    )
    header = f"{'':<18}{'requests':>9}{'req/s':>9}{'p50 ms':>9}{'p95 ms':>9}{'errors':>8}"
    print(header)
    rates = {}
    for mode, runs in totals.items():
        requests = sum(r.summary()["requests"] for r in runs)
        seconds = sum(r.summary()["seconds"] for r in runs)
        latencies = sorted(x for r in runs for x in r.latencies_ms)
        p50 = latencies[len(latencies) // 2] if latencies else float("nan")
        p95 = latencies[int(len(latencies) * 0.95)] if latencies else float("nan")
        errors = sum(r.summary()["errors"] for r in runs)
        rates[mode] = requests / seconds if seconds else float("nan")
        print(f"{mode:<18}{requests:>9}{rates[mode]:>9.2f}{p50:>9.0f}{p95:>9.0f}{errors:>8}")
    ratio = rates["monitoring on"] / rates["monitoring off"]
    print(
        f"\nmonitoring on / off throughput: {ratio:.3f} ({100 * (1 - ratio):+.1f}% lower; target <= 3%): "
        + ("met" if ratio >= 0.97 else "NOT met")
    )


def _released_project(root: Path, steps: int, batch: int) -> tuple[Any, Any]:
    """The example project, a short adapter trained on it, released to production (no eval: not measured here)."""
    import yaml

    from slmkit.config import load_config
    from slmkit.data import run_data_build
    from slmkit.registry import Registry
    from slmkit.train import run_train

    project = root / "project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".slmkit", ".demo"))
    settings = yaml.safe_load((project / "slmkit.yaml").read_text())
    settings["data"]["dedup"]["semantic"]["enabled"] = False
    settings["train"].update(max_steps=steps, eval_every=steps)
    settings.setdefault("serve", {})["max_batch_size"] = batch
    (project / "slmkit.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    config = load_config(project)
    run_data_build(config)
    trained = run_train(config, progress=False, log=lambda line: print(f"  train: {line}"))
    registry = Registry(config.state_dir)
    run = registry.get_run(trained.run_id)
    dataset = registry.get_dataset(trained.dataset_version)
    release = registry.create_release(
        name=config.task.name,
        run_id=trained.run_id,
        adapter_digest=trained.adapter_digest,
        base_model=run.base_model,
        dataset_version=dataset.version,
        gold_hash=dataset.gold_hash,
        eval_report_digest="0" * 64,
        config=config.resolved(),
        note="serve_load benchmark",
        alias="production",
    )
    registry.close()
    return config, release


def _record(config: Any, release: Any, stats: Any) -> None:
    """As `slmkit loadtest` records it: the release's latency evidence."""
    from slmkit.registry import Registry
    from slmkit.serve.load import latency_verdict, record_latency

    registry = Registry(config.state_dir)
    passed, _ = latency_verdict(stats, config.release.max_p95_latency_ms)
    record_latency(registry, release, stats, config, passed=passed, target="bench/serve_load.py")
    registry.close()


def _table(runs: dict[str, Any]) -> None:
    header = f"{'':<18}{'requests':>9}{'req/s':>9}{'tok/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}"
    print(header)
    for label, stats in runs.items():
        s = stats.summary()
        print(
            f"{label:<18}{s['requests']:>9}{s['requests_per_s']:>9.2f}{s['completion_tokens_per_s']:>8.0f}"
            f"{s['p50_ms']:>9.0f}{s['p95_ms']:>9.0f}{s['p99_ms']:>9.0f}{s['errors']:>8}"
        )


if __name__ == "__main__":
    main()
