"""Traffic: `slmkit loadtest` measures a release and records it; releases and rollbacks under load mix nothing."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter

import pytest
import yaml

from slmkit.data import run_data_build
from slmkit.registry import Registry
from slmkit.registry.checklist import release_checklist
from slmkit.serve import start_server
from slmkit.serve.load import LoadStats, drive, run_loadtest
from tests.serve.conftest import make_project, release_adapter
from tests.test_cli import run_cli

NAME = "support-tickets"


@pytest.fixture(scope="module")
def project(tmp_path_factory, tiny_model_dir, adapters):
    """A built dataset (gold inputs to send) and release 1 of it in production."""
    config = make_project(tmp_path_factory.mktemp("load"), tiny_model_dir)
    run_data_build(config)
    registry = Registry(config.state_dir)
    dataset = registry.get_dataset(task=NAME)
    registry.close()
    release_adapter(config, adapters[0], tiny_model_dir, dataset=dataset)
    return config, dataset


def test_percentiles_and_memory_growth_are_computed_as_stated() -> None:
    stats = LoadStats(clients=2, seconds=10.0, latencies_ms=[float(v) for v in range(1, 101)])
    assert (stats.percentile(50), stats.percentile(95), stats.percentile(99)) == (50.0, 95.0, 99.0)
    assert stats.requests_per_s == 10.0
    stats.rss_mib = [(float(t), 100.0 + (5 if t >= 8 else 0)) for t in range(10)]
    assert stats.rss_growth_mib() == 5.0
    assert LoadStats(1, 1.0).percentile(50) != LoadStats(1, 1.0).percentile(50)  # NaN: nothing answered


def test_drive_counts_every_request_and_keeps_failures_apart() -> None:
    calls = Counter()

    def send(text: str):
        calls[text] += 1
        time.sleep(0.002)
        return (text != "bad", 3, None if text != "bad" else "http_500", "v1")

    stats = drive(send, ["a", "b", "bad"], clients=3, seconds=0.5)
    assert stats.requests >= 3 and stats.errors["http_500"] >= 1
    assert len(stats.latencies_ms) == stats.requests - stats.errors["http_500"]
    assert stats.completion_tokens == 3 * len(stats.latencies_ms)
    assert all(latency >= 2.0 for latency in stats.latencies_ms)


def test_loadtest_measures_the_gateway_and_records_latency_evidence(project, capsys) -> None:
    config, _ = project
    test = run_loadtest(config, clients=4, seconds=3, warmup_s=0.5, log=lambda _: None)
    summary = test.stats.summary()
    assert test.passed and summary["errors"] == 0, summary
    assert summary["requests"] > 0 and summary["requests_per_s"] > 0
    assert summary["p50_ms"] <= summary["p95_ms"] <= summary["p99_ms"]
    assert set(summary["answered_by"]) == {f"{NAME}@1"}
    registry = Registry(config.state_dir)
    release = registry.get_release(NAME, 1)
    evidence = release.latest_evidence("latency")
    assert evidence is not None and evidence.passed and evidence.detail["requests"] == summary["requests"]
    checklist = release_checklist(registry, release, alerts=[], blocking=["latency"])
    assert next(i for i in checklist.items if i.key == "latency").status == "pass"

    # A budget the gateway cannot meet fails the item, and the CLI says so with exit code 10.
    code, out, _ = run_cli(
        capsys, "loadtest", "1", "-p", str(config.root), "--clients", "2", "--seconds", "1", "--warmup", "0"
    )
    assert code == 0 and "PASS" in out and "req/s" in out
    settings = yaml.safe_load((config.root / "slmkit.yaml").read_text())
    settings.setdefault("release", {})["max_p95_latency_ms"] = 0.001
    (config.root / "slmkit.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    code, out, err = run_cli(
        capsys, "loadtest", "1", "-p", str(config.root), "--clients", "2", "--seconds", "1", "--warmup", "0"
    )
    assert code == 10 and "FAIL" in err and "max_p95_latency_ms" in err and "req/s" in out
    release = Registry(config.state_dir).get_release(NAME, 1)
    assert release.latest_evidence("latency").passed is False
    checklist = release_checklist(Registry(config.state_dir), release, alerts=[], blocking=["latency"])
    assert next(i for i in checklist.items if i.key == "latency").status == "fail"


def test_release_and_rollback_under_traffic_fail_nothing_and_mix_no_versions(
    tmp_path, tiny_model_dir, adapters
) -> None:
    """Each version refuses with its own recorded refusal output, so an answer shows the version that made it."""
    config = make_project(tmp_path / "p", tiny_model_dir)
    first = config.resolved()
    second = config.resolved()
    second["task"]["refusal"]["output"] = {**first["task"]["refusal"]["output"], "priority": "medium"}
    release_adapter(config, adapters[0], tiny_model_dir, recorded_config=first)
    priority = {f"{NAME}@1": first["task"]["refusal"]["output"]["priority"], f"{NAME}@2": "medium"}
    with start_server(config) as handle:
        seen: list[tuple[str, str]] = []
        lock = threading.Lock()
        host, port = handle.url.removeprefix("http://").split("/")[0].split(":")

        def answer(text: str):
            conn = http.client.HTTPConnection(host, int(port), timeout=120)
            body = json.dumps({"model": NAME, "messages": [{"role": "user", "content": text}]})
            conn.request("POST", "/v1/chat/completions", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = json.loads(response.read())
            conn.close()
            if response.status != 200:
                return False, 0, f"http_{response.status}", None
            content = json.loads(payload["choices"][0]["message"]["content"])
            with lock:
                seen.append((payload["model"], content["priority"]))
            return True, 1, None, payload["model"]

        def swap() -> None:
            time.sleep(1.5)
            release_adapter(config, adapters[1], tiny_model_dir, recorded_config=second)  # production -> 2
            time.sleep(2.0)
            registry = Registry(config.state_dir)
            registry.rollback(NAME, reason="under traffic")  # production -> 1
            registry.close()

        swapper = threading.Thread(target=swap)
        swapper.start()
        stats = drive(answer, [f"ticket {i}" for i in range(8)], clients=6, seconds=6.0)
        swapper.join()
    assert stats.errors == Counter(), stats.errors
    assert set(stats.answered_by) == {f"{NAME}@1", f"{NAME}@2"}, stats.answered_by
    mixed = [(model, got) for model, got in seen if got != priority[model]]
    assert not mixed, f"answers from one version's task under another's name: {mixed[:5]}"
