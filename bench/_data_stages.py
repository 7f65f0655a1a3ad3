"""The three stages the data-build throughput target names, on their own: PII, exact key, MinHash.

`prepare` turns a JSONL file into chunks of (input fields, answer) and, in each worker
process, builds the scrubber and the MinHasher from the project's settings; `run_chunk`
passes one chunk through PII removal, the exact-dedup key and the MinHash signature.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHUNK = 2048
_STATE: dict[str, Any] = {}


def prepare(config: Any, data: Path | None) -> list[list[tuple[dict[str, str], Any]]]:
    from slmkit.data.near import MinHasher
    from slmkit.data.normalize import normalize_text
    from slmkit.data.pii import PiiScrubber
    from slmkit.task import Task

    task = Task.from_config(config)
    near = config.data.dedup.near
    _STATE.update(task=task, scrubber=PiiScrubber(config.data.pii), minhash=MinHasher(near.num_perm, near.shingle))
    if data is None:
        return []
    rows = []
    with data.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            fields = {name: normalize_text(str(record.get(name) or "")) for name in task.cfg.input_fields}
            rows.append((fields, record.get("output")))
    return [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]


def run_chunk(chunk: list[tuple[dict[str, str], Any]]) -> int:
    from slmkit.data.normalize import dedup_key

    task, scrubber, minhash = _STATE["task"], _STATE["scrubber"], _STATE["minhash"]
    texts = []
    keys = set()
    for fields, output in chunk:
        clean, _, _ = scrubber.scrub_row(fields, output)
        text = task.render_input(clean)
        keys.add(dedup_key(text))
        texts.append(text)
    minhash.signatures(texts)
    return len(chunk)
