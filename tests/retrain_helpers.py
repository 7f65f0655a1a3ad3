"""A released tiny-model project, production traffic through a real server, and a reviewer who answers
the production review queue with the traffic's own labels (the examples' traffic files carry them)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from slmkit.config import ProjectConfig
from slmkit.monitor.replay import replay
from tests.conftest import EXAMPLE, read_jsonl

TRAFFIC = EXAMPLE / "traffic"


def send_traffic(config: ProjectConfig, rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Serve the release at release.alias on a free port and send `rows` through the official openai
    client; request id -> the row's labelled output (its `output`)."""
    from slmkit.serve import start_server

    requests = [[{"role": "user", "content": json.dumps({k: r[k] for k in ("subject", "body")})}] for r in rows]
    answered: dict[str, dict[str, Any]] = {}
    with start_server(config, port=0) as handle:
        stats = replay(
            handle.url,
            config.task.name,
            requests,
            concurrency=4,
            on_answer=lambda i, reply: (
                answered.__setitem__(reply.id, rows[i]["output"]) if not isinstance(reply, Exception) else None
            ),
        )
    assert stats.answered == len(rows), stats.errors
    return answered


def traffic_rows(name: str, start: int, stop: int) -> list[dict[str, Any]]:
    return read_jsonl(TRAFFIC / f"{name}.jsonl")[start:stop]


def fill_csv(path: Path, labels: dict[str, dict[str, Any]]) -> dict[str, int]:
    """The reviewer: accept the served answer when it is the traffic's label, else correct it to the label."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
        columns = list(rows[0]) if rows else []
    counts = {"accept": 0, "correct": 0}
    for row in rows:
        right = dict(labels[row["id"].removeprefix("requests.db#")])
        served = _json(row["answer"])
        if served == right:
            row["verdict"] = "accept"
        else:
            row["verdict"], row["correction"] = "correct", json.dumps(right)
        counts[row["verdict"]] += 1
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return counts


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None
