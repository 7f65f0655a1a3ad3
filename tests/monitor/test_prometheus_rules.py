"""`slmkit monitor rules`: the Prometheus rules and Grafana queries are checked by promtool itself."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from slmkit.config import load_config
from slmkit.monitor.prometheus import alert_expr, alert_name, dashboard, metric_expr, rules_file
from tests.conftest import EXAMPLE

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (CI installs Debian's prometheus: apt-get install prometheus)"
)


def promtool_check(path: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )


@needs_promtool
def test_the_example_rules_pass_promtool(tmp_path: Path) -> None:
    config = load_config(EXAMPLE, check_files=False)
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump(rules_file(config), sort_keys=False, width=1000))

    result = promtool_check(path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(config.monitor.alerts)} rules found" in result.stdout
    rules = yaml.safe_load(path.read_text())["groups"][0]["rules"]
    slow = next(r for r in rules if r["alert"] == "SlmkitSlowAnswers")
    assert slow["for"] == "5m"
    assert slow["expr"].startswith("(1000 * histogram_quantile(0.95, sum by (release, le) (rate(slmkit_request_latency")
    assert "increase(slmkit_requests_total[15m])) >= 20" in slow["expr"]


@needs_promtool
def test_every_grafana_query_and_every_metric_is_valid_promql(tmp_path: Path) -> None:
    """Each dashboard query and each metric's expression as a recording rule: promtool parses them all."""
    config = load_config(EXAMPLE, check_files=False)
    queries = [t["expr"].replace("$__rate_interval", "5m") for p in dashboard(config)["panels"] for t in p["targets"]]
    metrics = ["schema_valid_rate", "refusal_rate", "guard_replaced_rate", "error_rate", "requests",
               "requests_per_minute", "latency_p99_ms", "ttft_p95_ms", "inter_token_p95_ms", "input_drift_p",
               "label_share.billing"]  # fmt: skip
    queries += [metric_expr(m, "10m") for m in metrics]
    rules = [{"record": f"slmkit:check_{i}", "expr": q} for i, q in enumerate(queries)]
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}, width=1000))

    result = promtool_check(path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_rules_are_named_and_judged_only_with_enough_requests() -> None:
    config = load_config(EXAMPLE, check_files=False)
    drift = next(r for r in config.monitor.alerts if r.metric == "input_drift")
    assert alert_name(drift) == "SlmkitInputDrift"
    assert alert_expr(drift) == (
        '(max by (release) (slmkit_monitor_value{metric="input_drift", window="1h"})) >= 1 '
        "and on (release) (sum by (release) (increase(slmkit_requests_total[1h])) >= 100)"
    )
    board = dashboard(config)
    assert json.loads(json.dumps(board))["title"] == "slmkit: support-tickets"
    assert len(board["panels"]) == 12 and all(p["targets"] for p in board["panels"])
