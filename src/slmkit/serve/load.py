"""Load under concurrency: N clients, T seconds, requests/s, latency percentiles, errors, memory.

`drive` runs any blocking `send` callable from N threads until the time is up, so the same
measurement applies to the gateway over HTTP (`http_sender`) and to an engine called directly;
`bench/serve_load.py` runs both in one process and prints the gateway's overhead.
`slmkit loadtest REF` runs it against a served release and records the result as the release's
latency evidence, which `slmkit check` judges.
"""

from __future__ import annotations

import http.client
import json
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from slmkit.config import ProjectConfig
from slmkit.errors import StageError
from slmkit.registry import Evidence, Registry, Release
from slmkit.task import Task

# One request: (ok, completion tokens, error kind or None, release that answered or None).
Reply = tuple[bool, int, str | None, str | None]
Sender = Callable[[str], Reply]


@dataclass
class LoadStats:
    clients: int
    seconds: float  # measured wall time, warm-up excluded
    latencies_ms: list[float] = field(default_factory=list)  # of the requests that succeeded
    errors: Counter[str] = field(default_factory=Counter)
    completion_tokens: int = 0
    answered_by: Counter[str] = field(default_factory=Counter)
    rss_mib: list[tuple[float, float]] = field(default_factory=list)  # (seconds in, RSS) samples

    @property
    def requests(self) -> int:
        return len(self.latencies_ms) + sum(self.errors.values())

    @property
    def requests_per_s(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        """The q-th percentile latency (nearest rank), in ms; NaN with no successful request."""
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
        return ordered[rank]

    def rss_growth_mib(self) -> float:
        """RSS at the end minus RSS after the first fifth of the run (warm caches), in MiB."""
        if len(self.rss_mib) < 2:
            return 0.0
        settled = self.rss_mib[len(self.rss_mib) // 5][1]
        return self.rss_mib[-1][1] - settled

    def summary(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 1),
            "requests": self.requests,
            "errors": sum(self.errors.values()),
            "error_kinds": dict(self.errors),
            "requests_per_s": round(self.requests_per_s, 3),
            "p50_ms": round(self.percentile(50), 1),
            "p95_ms": round(self.percentile(95), 1),
            "p99_ms": round(self.percentile(99), 1),
            "completion_tokens_per_s": round(self.completion_tokens / self.seconds, 1) if self.seconds else 0.0,
            "rss_growth_mib": round(self.rss_growth_mib(), 1),
            "answered_by": dict(self.answered_by),
        }


def drive(
    send: Sender,
    inputs: Sequence[str],
    *,
    clients: int,
    seconds: float,
    warmup_s: float = 0.0,
    rss_pid: int | None = None,
) -> LoadStats:
    """`clients` threads call `send` back to back for `seconds` (after `warmup_s` not counted).

    Each client cycles through `inputs` from its own offset. A request that started before the
    deadline is waited for and counted; one that started in the warm-up is not.
    """
    stats = LoadStats(clients, 0.0)
    lock = threading.Lock()
    began = time.perf_counter()
    measure_from = began + warmup_s
    deadline = measure_from + seconds

    def client(index: int) -> None:
        n = index
        while (start := time.perf_counter()) < deadline:
            ok, tokens, error, release = send(inputs[n % len(inputs)])
            n += clients
            if start < measure_from:
                continue
            elapsed_ms = (time.perf_counter() - start) * 1000
            with lock:
                if ok:
                    stats.latencies_ms.append(elapsed_ms)
                    stats.completion_tokens += tokens
                else:
                    stats.errors[error or "error"] += 1
                if release:
                    stats.answered_by[release] += 1

    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for worker in workers:
        worker.start()
    pid = rss_pid or os.getpid()
    while any(w.is_alive() for w in workers):
        if time.perf_counter() >= measure_from:
            stats.rss_mib.append((time.perf_counter() - measure_from, _rss_mib(pid)))
        time.sleep(min(1.0, max(0.05, seconds / 200)))
    stats.seconds = time.perf_counter() - measure_from  # to the last answer of a request started in time
    return stats


def http_sender(url: str, model: str, *, api_key: str | None = None, timeout_s: float = 300.0) -> Sender:
    """A `send` that posts one chat completion to an OpenAI-compatible server, a connection per thread.

    `url` is the server's OpenAI base URL (`http://host:port/v1`); a bare `http://host:port` works too.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    base = parts.path.rstrip("/")
    path = (base if base.endswith("/v1") else base + "/v1") + "/chat/completions"
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    local = threading.local()

    def send(text: str) -> Reply:
        body = json.dumps({"model": model, "messages": [{"role": "user", "content": text}]})
        for attempt in range(2):  # a kept-alive connection the server closed is reopened once
            conn = getattr(local, "conn", None) or http.client.HTTPConnection(host, port, timeout=timeout_s)
            local.conn = conn
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                local.conn = None
                if attempt == 0 and isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError)):
                    continue
                return False, 0, type(exc).__name__, None
            if response.status != 200:
                return False, 0, f"http_{response.status}", None
            answer = json.loads(payload)
            return True, int(answer.get("usage", {}).get("completion_tokens", 0)), None, answer.get("model")
        return False, 0, "disconnected", None

    return send


def _rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


@dataclass(frozen=True)
class LoadTest:
    release: Release
    stats: LoadStats
    evidence: Evidence | None  # None when not recorded (a server elsewhere, or --no-record)
    passed: bool
    reason: str


def run_loadtest(
    config: ProjectConfig,
    ref: str | None = None,
    *,
    clients: int = 16,
    seconds: float = 60.0,
    warmup_s: float = 5.0,
    url: str | None = None,
    api_key: str | None = None,
    record: bool = True,
    log: Callable[[str], None] = print,
) -> LoadTest:
    """Drive `ref` (default: serve.release) with `clients` concurrent clients; record the latency evidence.

    Without `url` the gateway starts here on a free port, as `slmkit serve` would serve it; with
    `url` it measures a server already running (one this project's registry also describes).
    Inputs are the release's own gold inputs. The run passes with no failed request and, when
    `release.max_p95_latency_ms` is set, a p95 latency within it.
    """
    registry = Registry(config.state_dir)
    release = registry.resolve(ref or config.task.name, default_alias=config.serve.release)
    inputs = _gold_inputs(registry, release, Task.from_config(config))
    handle = None
    if url is None:
        from slmkit.serve.server import start_server

        handle = start_server(config, release=str(release.version))
        url = handle.url
        log(f"gateway for {release.ref} on {url}")
    try:
        log(f"{clients} clients for {seconds:g}s (after {warmup_s:g}s of warm-up) against {release.ref}")
        send = http_sender(url, release.ref, api_key=api_key)
        stats = drive(send, inputs, clients=clients, seconds=seconds, warmup_s=warmup_s)
    finally:
        if handle is not None:
            handle.stop()
    passed, reason = latency_verdict(stats, config.release.max_p95_latency_ms)
    target = "started here" if handle is not None else url
    evidence = record_latency(registry, release, stats, config, passed=passed, target=target) if record else None
    return LoadTest(release, stats, evidence, passed, reason)


def latency_verdict(stats: LoadStats, budget: float | None) -> tuple[bool, str]:
    """Pass: no failed request, something answered, and p95 within `budget` (ms) when one is set."""
    summary = stats.summary()
    failures = []
    if summary["errors"]:
        failures.append(f"{summary['errors']} failed request(s): {summary['error_kinds']}")
    if not stats.latencies_ms:
        failures.append("no request was answered")
    elif budget is not None and summary["p95_ms"] > budget:
        failures.append(f"p95 {summary['p95_ms']:.0f} ms over release.max_p95_latency_ms={budget:g}")
    reason = "; ".join(failures) or (
        f"p95 {summary['p95_ms']:.0f} ms" + (f" within {budget:g} ms" if budget is not None else "") + ", no errors"
    )
    return not failures, reason


def record_latency(
    registry: Registry, release: Release, stats: LoadStats, config: ProjectConfig, *, passed: bool, target: str
) -> Evidence:
    """The run as the release's latency evidence, which `slmkit check` judges."""
    summary = stats.summary()
    line = (
        f"{stats.clients} clients x {stats.seconds:.0f}s: {summary['requests_per_s']:.2f} req/s, "
        f"p50 {summary['p50_ms']:.0f} / p95 {summary['p95_ms']:.0f} / p99 {summary['p99_ms']:.0f} ms, "
        f"{summary['errors']} errors"
    )
    detail = {
        **summary,
        "summary": line,
        "engine": config.serve.engine,
        "max_p95_latency_ms": config.release.max_p95_latency_ms,
        "target": target,
    }
    return registry.record_evidence(release.name, release.version, "latency", passed=passed, detail=detail)


def _gold_inputs(registry: Registry, release: Release, task: Task) -> list[str]:
    """The release's gold inputs, rendered as requests carry them."""
    from slmkit.data.dataset import read_examples, verify_gold_file

    dataset = registry.get_dataset(release.dataset_version)
    gold_file = registry.store.path(dataset.digest) / "gold.jsonl"
    verify_gold_file(gold_file, release.gold_hash)
    inputs = [row.input for row in read_examples(gold_file)]
    if not inputs:
        raise StageError(f"{release.ref} has no gold inputs to send", hint="its dataset's gold split is empty")
    return inputs
