"""The whole chain through the CLI on a tiny model: artifacts, gates, releases, rollback, serving."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from slmkit.cli.main import main
from slmkit.config import load_config
from slmkit.task import Task


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    old = sys.argv
    sys.argv = ["slmkit", *args]
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        sys.argv = old
    out, err = capsys.readouterr()
    return code, out, err


def latest_run(project: Path) -> Path:
    return sorted((project / ".slmkit" / "runs").iterdir())[-1]


def set_gates(project: Path, gates: list[str]) -> None:
    config = yaml.safe_load((project / "slmkit.yaml").read_text())
    config["eval"]["gates"] = gates
    (project / "slmkit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def test_whole_chain_on_a_tiny_model(tiny_project, capsys):
    p = str(tiny_project)
    code, out, _ = run_cli(capsys, "validate", "-p", p)
    assert code == 0 and "ok:" in out

    code, out, _ = run_cli(capsys, "data", "build", "-p", p)
    assert code == 0 and "accounting:" in out and "rejected" in out

    code, out, _ = run_cli(capsys, "train", "-p", p, "-q")
    assert code == 0 and "6 steps" in out
    run = latest_run(tiny_project)
    assert (run / "run.json").exists() and (run / "config.json").exists()
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps if "loss" in s] == [1, 2, 3, 4, 5, 6]
    assert any("val_loss" in s for s in steps[1:])
    weights = load_file(run / "adapter" / "adapter_model.safetensors")
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b), "LoRA B starts at zero; training must move it"

    code, out, _ = run_cli(capsys, "eval", "-p", p)
    assert code == 0 and "gates: PASSED" in out
    report = json.loads((run / "eval" / "report.json").read_text())
    assert set(report["metrics"]) == {"base", "adapter", "adapter_free"} and report["items"] == 12
    # The printed table has a column per side, with the report's numbers.
    header = next(line for line in out.splitlines() if line.startswith("metric"))
    assert header.split() == ["metric", "base", "adapter", "adapter_free"]
    validity = next(line for line in out.splitlines() if line.startswith("schema_validity "))
    assert [float(v) for v in validity.split()[1:]] == [
        round(report["metrics"][s]["schema_validity"]["value"], 3) for s in ("base", "adapter", "adapter_free")
    ]
    # As served: under the schema, so even a 6-step adapter of a random model writes the schema's
    # JSON (cut off here: this project allows 24 tokens, the schema up to ~53, and eval says so);
    # the same adapter decoding freely is reported beside it.
    assert report["decoding"]["constrained"] is True and report["timing"]["adapter_free"]["constrained"] is False
    assert all(p["adapter"]["text"].startswith('{"category": "') for p in report["predictions"])
    assert not any(p["adapter_free"]["text"].startswith("{") for p in report["predictions"])
    assert "eval.max_new_tokens=24 is below the longest answer the schema allows" in out
    assert (run / "eval" / "report.html").read_text().startswith("<!doctype html>")

    code, out, _ = run_cli(capsys, "release", "-p", p, "-m", "first")
    assert code == 0 and "released support-tickets@1" in out

    assert run_cli(capsys, "train", "-p", p, "-q")[0] == 0
    assert run_cli(capsys, "eval", "-p", p)[0] == 0
    code, out, _ = run_cli(capsys, "release", "-p", p)
    assert code == 0 and "released support-tickets@2" in out and "previous: support-tickets@1" in out

    code, out, _ = run_cli(capsys, "rollback", "-p", p, "-m", "bad answers")
    assert code == 0 and "support-tickets@production: 2 -> 1" in out
    code, out, _ = run_cli(capsys, "releases", "-p", p)
    line_v1 = next(line for line in out.splitlines() if line.startswith("1 "))
    assert "production" in line_v1

    # A gate that the tiny model cannot pass blocks the release, naming the gate and its interval.
    set_gates(tiny_project, ["exact_match >= 0.99"])
    assert run_cli(capsys, "train", "-p", p, "-q")[0] == 0
    code, out, err = run_cli(capsys, "eval", "-p", p)
    assert code == 6 and "FAIL  exact_match >= 0.99" in out and "gates: FAILED" in out
    code, out, err = run_cli(capsys, "release", "-p", p)
    assert code == 6
    assert "blocked by 1 failed gate(s): exact_match >= 0.99: observed 0." in err
    assert "Traceback" not in err
    code, out, _ = run_cli(capsys, "releases", "-p", p)
    assert "3 " not in "".join(line[:2] for line in out.splitlines())  # no third release


def test_user_mistakes_get_a_message_and_an_exit_code_not_a_traceback(tmp_path, capsys):
    (tmp_path / "slmkit.yaml").write_text("base_model: smollm2-135m-instruct\ntask:\n  name: Bad Name\n")
    code, _, err = run_cli(capsys, "validate", "-p", str(tmp_path))
    assert code == 2 and "task.name: string should match pattern" in err and "data: required" in err
    assert "Traceback" not in err
    code, _, err = run_cli(capsys, "train", "-p", str(tmp_path / "nowhere"))
    assert code == 2 and "no slmkit.yaml here" in err


def test_init_writes_a_project_that_validates(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "init", "--template", "extraction", str(tmp_path / "inv"))
    assert code == 0 and "slmkit.yaml" in out
    code, out, _ = run_cli(capsys, "validate", "-p", str(tmp_path / "inv"))
    assert code == 0 and "invoice-fields" in out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_slmkit_serve_answers_real_http_with_a_schema_valid_body(tiny_project, capsys):
    p = str(tiny_project)
    for args in (["data", "build"], ["train", "-q"], ["eval"], ["release"]):
        assert run_cli(capsys, *args, "-p", p)[0] == 0
    port = free_port()
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    server = subprocess.Popen(
        [sys.executable, "-m", "slmkit", "serve", "-p", p, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"server did not start: {server.stdout.read() if server.stdout else ''}")
            time.sleep(0.5)
        request = urllib.request.Request(
            f"{base}/v1/chat/completions",
            data=json.dumps(
                {
                    "model": "support-tickets",
                    "messages": [{"role": "user", "content": "Subject: broken\n\nMy PulseBuds Pro will not charge."}],
                }
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as reply:
            assert reply.status == 200
            body = json.loads(reply.read())
        task = Task.from_config(load_config(tiny_project))
        content = body["choices"][0]["message"]["content"]
        assert task.validate(json.loads(content)) == []
        assert body["model"] == "support-tickets@1" and body["slmkit"]["release"] == "support-tickets@1"
        assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    finally:
        server.terminate()
        server.wait(timeout=30)
