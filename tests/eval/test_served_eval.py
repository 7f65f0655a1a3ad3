"""`slmkit eval --via URL`: the gold set answered through a running `slmkit serve`, scored like the offline answers."""

from __future__ import annotations

import json
from pathlib import Path

from slmkit.config import load_config
from slmkit.registry import Registry
from slmkit.serve import start_server
from tests.conftest import write_project
from tests.test_release_cli import cli, ok

TASK = "support-tickets"


def test_served_answers_are_scored_beside_the_offline_ones_and_agree(tmp_path: Path, tiny_model_dir) -> None:
    project = write_project(
        tmp_path / "project",
        tiny_model_dir,
        overrides={
            "train.max_steps": 3,
            "train.batch_size": 4,
            "train.eval_every": 3,
            "eval.max_items": 6,
            "eval.decoding": "as_served",
            "eval.compare_base": False,
            "eval.gates": ["schema_validity >= 0.0"],
            "serve.max_new_tokens": 64,
        },
    )
    p = str(project)
    ok("data", "build", "-p", p)
    ok("train", "-p", p, "-q")
    ok("eval", "-p", p)
    ok("release", "-p", p, "-m", "first")
    config = load_config(project)
    with start_server(config) as handle:
        code, out, err = cli("eval", "-p", p, "--via", handle.url)
    assert code == 0, err
    assert f"served: 6 gold items through {handle.url} ({TASK}@1)" in out
    assert next(line for line in out.splitlines() if line.startswith("metric")).split() == [
        "metric",
        "adapter",
        "served",
    ]
    with Registry(project / ".slmkit") as registry:
        run = registry.get_run(None, task=TASK)
    report = json.loads((project / ".slmkit" / "runs" / run.run_id / "eval" / "report.json").read_text())
    served = report["served"]
    assert served["answered_by"] == [f"{TASK}@1"] and served["failed"] == 0
    # The served release is this run's adapter, decoded the same way (under the schema): the same answers.
    same = sum(p["served"]["text"] == p["adapter"]["text"] for p in report["predictions"])
    assert served["agreement_with_adapter"] >= 5 / 6 and same >= 5, report["predictions"]
    assert set(report["metrics"]) == {"adapter", "served"}
    assert (
        report["metrics"]["served"]["schema_validity"]["value"]
        == report["metrics"]["adapter"]["schema_validity"]["value"]
    )

    code, _, err = cli("eval", "-p", p, "--via", "http://127.0.0.1:9/v1")
    assert code != 0 and "cannot reach the server at http://127.0.0.1:9/v1" in err
