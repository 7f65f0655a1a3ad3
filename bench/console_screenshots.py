"""The console's screenshots in docs/img, taken from a real project: two releases, real traffic, a real browser.

It copies the example project into a temporary folder (semantic dedup and input embeddings off, so
it stays short) and runs the chain through the command line twice: `slmkit data build`, a short
`slmkit train` (`--steps`), `slmkit eval` on the first `--gold` items of the locked gold set,
`slmkit release`; the second run trains at another learning rate and its release moves
`production` (after rehearsing a rollback to the first). Then `slmkit serve` runs as its own
process, with the example's alert rules judged every 2 s, and `--requests` tickets of
examples/support-tickets/traffic/unshifted.jsonl go through it with the official `openai` client.
Last, `slmkit ui` serves the project read-only and Debian's chromium (headless, driven by
Playwright) photographs the overview, the production release's page and the monitoring page over
the last hour. Each PNG keeps the top of its page (down to the monitoring page's plots) and is
stored with a 256-colour palette (the pages are flat colours), under 150 KB.

The base model is the tests' tiny random one (2 layers, SmolLM2's tokenizer; about 2 minutes in
all): its answers are valid under the schema but refusals, so the pages show a release that
learned nothing and the refusal alert firing. `--base-model smollm2-135m-instruct` uses the real
model (over 8 minutes); with 6 training steps its second release was refused by the rollback
rehearsal (12 of 16 answers of the first release matched its eval, under the 0.9 agreement), so
it needs more `--steps` than a short run affords.

    .venv/bin/python bench/console_screenshots.py            # or: make screenshots
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "support-tickets"
TASK = "support-tickets"
MAX_BYTES = 150_000
# (file name, path, what must be on the page before it is photographed, the most pixels of it kept)
PAGES = (
    ("console-overview", "/", "main", 1500),
    ("console-release", "/releases/2", "main", 1150),
    ("console-monitoring", "/monitoring?span=1h", "#summary", 3200),  # down to the plots
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "img")
    parser.add_argument(
        "--base-model",
        default="tiny",
        help="`tiny` (the tests' 2-layer random model), a model slmkit knows, or a folder",
    )
    parser.add_argument("--steps", type=int, default=6, help="training steps of each run")
    # 32: the label and confidence drift tests need 30 eval answers, or the checklist fails their rules.
    parser.add_argument("--gold", type=int, default=32, help="gold items each eval answers")
    parser.add_argument(
        "--requests", type=int, default=120, help="tickets sent through slmkit serve (100: drift judged)"
    )
    args = parser.parse_args()
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="slmkit-shots-") as tmp:
        project = write_project(Path(tmp) / TASK, args)
        two_releases(project)
        print(f"== two releases in {time.perf_counter() - began:.0f}s", flush=True)
        serve_traffic(project, args.requests)
        print(f"== {args.requests} requests served; {time.perf_counter() - began:.0f}s so far", flush=True)
        for path in photograph(project, args.out):
            print(f"{path.relative_to(REPO) if path.is_relative_to(REPO) else path}: {path.stat().st_size:,} bytes")
    print(f"== done in {time.perf_counter() - began:.0f}s")


def write_project(root: Path, args: argparse.Namespace) -> Path:
    """The example on `--base-model`, with a short training run, a short eval and gates a short run can pass."""
    shutil.copytree(EXAMPLE / "data", root / "data")
    config = yaml.safe_load((EXAMPLE / "slmkit.yaml").read_text())
    config["base_model"] = str(tiny_model(root.parent)) if args.base_model == "tiny" else args.base_model
    config["data"]["dedup"]["semantic"]["enabled"] = False  # MiniLM over every row: seconds we do not need
    config["train"].update({"max_steps": args.steps, "batch_size": 4, "eval_every": args.steps})
    # A few steps do not teach the labels: the gate a short run can meet is the schema (decoded under it).
    config["eval"].update({"max_items": args.gold, "max_new_tokens": 48, "forgetting": False})
    config["eval"]["gates"] = ["schema_validity >= 0.9"]
    monitor = config["monitor"]
    monitor["embeddings"] = False  # no MiniLM per request: the input drift rules go with it
    monitor["alerts"] = [r for r in monitor["alerts"] if not r["metric"].startswith("input_drift")]
    monitor["evaluate_every_s"] = 2
    monitor["capture"] = {"share": 0.1, "retention_days": 30}
    (root / "slmkit.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def tiny_model(folder: Path) -> Path:
    from slmkit.models import resolve_base_model
    from slmkit.models.tiny import build_tiny_model

    return build_tiny_model(folder / "tiny-model", resolve_base_model("smollm2-135m-instruct").path)


def two_releases(project: Path) -> None:
    p = str(project)
    slmkit("data", "build", "-p", p)
    for rate, note in ((0.001, "first release"), (0.002, "second release: learning rate 0.002")):
        path = project / "slmkit.yaml"
        config = yaml.safe_load(path.read_text())
        config["train"]["learning_rate"] = rate
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        slmkit("train", "-p", p, "-q")
        slmkit("eval", "-p", p)
        slmkit("release", "-p", p, "-m", note)


def slmkit(*args: str) -> str:
    print(f"$ slmkit {' '.join(args)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "slmkit", *args], capture_output=True, text=True, check=False)
    if result.returncode:
        tail = result.stdout[-3000:] + result.stderr[-3000:]
        raise SystemExit(f"slmkit {args[0]} exited {result.returncode}:\n{tail}")
    return result.stdout


def serve_traffic(project: Path, count: int) -> None:
    """`slmkit serve` in its own process; `count` real tickets through it; stopped once it judged them."""
    from slmkit.monitor.replay import read_requests, replay

    server = subprocess.Popen(
        [sys.executable, "-m", "slmkit", "serve", "-p", str(project), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        url = _served_url(server)
        tickets = read_requests(EXAMPLE / "traffic" / "unshifted.jsonl", ["subject", "body"])[:count]
        stats = replay(url, TASK, tickets, concurrency=4)
        if stats.errors:
            raise SystemExit(f"the server answered {stats.errors} requests with an error")
        time.sleep(5)  # the server judges its alert rules every 2 s: let it judge the whole traffic
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=60)


def _served_url(server: subprocess.Popen[str]) -> str:
    assert server.stdout is not None
    for line in server.stdout:
        found = re.search(r"OpenAI base URL: (\S+)", line)
        if found:
            # Its access log goes on being written: drain it, or the pipe fills and the server blocks.
            threading.Thread(target=lambda: [None for _ in server.stdout or ()], daemon=True).start()
            return found.group(1)
    raise SystemExit(f"slmkit serve exited {server.wait()} before printing its URL")


def photograph(project: Path, out: Path) -> list[Path]:
    """The console on `project`, read-only, each page of PAGES as a small PNG in `out`."""
    from playwright.sync_api import expect, sync_playwright

    from slmkit.config import load_config
    from slmkit.ui import start_console

    sys.path.insert(0, str(REPO))
    # The tests' chromium (Debian's, headless, no download) and their way of storing a small PNG.
    from tests.ui.browser import launch, save_small

    out.mkdir(parents=True, exist_ok=True)
    paths = []
    with start_console(load_config(project, check_files=False)) as console, sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(base_url=console.url, viewport={"width": 1280, "height": 900})
            for name, route, ready, height in PAGES:
                page.goto(route)
                # The monitoring page's first view may say it is computing, then reload itself.
                expect(page.locator(ready).first).to_be_visible(timeout=120_000)
                png = page.screenshot(full_page=True)
                paths.append(save_small(png, out / f"{name}.png", height=height, max_bytes=MAX_BYTES))
        finally:
            browser.close()
    return paths


if __name__ == "__main__":
    main()
