"""The retraining cycle, end to end on the example, with the time of every stage.

Takes the demo's release (`.demo/support-tickets`, made by `make demo`; run here first when it is
missing), copies the project into `--work` and:

1. serves it (`slmkit serve`, its own process) with every answer captured for review and the alert
   rules evaluated every `--every` seconds;
2. replays `--unshifted` tickets of examples/support-tickets/traffic/unshifted.jsonl, then
   `--shifted` of traffic/shifted.jsonl (a product line the model never saw, refunds asked for in
   new words) through the official `openai` client, until the drift alert fires and the rest is in;
   the last `--held-out` shifted tickets are never sent: they are the slice measured at the end;
3. draws the production review queue (`slmkit review queue --traffic`), exports it, and answers it
   WITH THE TRAFFIC FILES' OWN LABELS standing in for a human reviewer (accept when the served
   answer is the label, else correct it to the label), then imports it (`slmkit review import`);
4. `slmkit retrain --if-due` (due: the drift alert fires) builds, trains, evaluates every gate and
   `no_regression_vs production` on the locked gold set, and releases; the running server
   answers with the new release on its next request, without a restart;
5. sends the held-out shifted slice to both releases through the server (`support-tickets@1`,
   `@2`) and prints label accuracy before -> after with Wilson intervals and the paired test;
6. (`--phase bad`) reviews the next batch with CORRUPTED answers (every category rotated to a
   wrong one), retrains, and shows the retrain blocked with production unmoved.

    .venv/bin/python bench/retrain_cycle.py --phase good   # or: make cycle
    .venv/bin/python bench/retrain_cycle.py --phase bad    # afterwards, on the same --work

The good phase's clock for "alert -> new production release" starts when the cycle acts on the
firing alert (after the replay) and ends when the server answers with the new release.

`--shared it_tickets` runs the same cycle on a real shared set (../shared/data/it_tickets: IT
service-desk tickets routed to 8 queues): its base release is trained here on 640 tickets of
seven queues (Purchase left out, as a product line that did not exist yet), gold is 240 tickets
of its test file, and the shifted traffic mixes in Purchase tickets (40%) that no release saw.

    .venv/bin/python bench/retrain_cycle.py --shared it_tickets --phase good
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from drift_drill import _after_next_evaluation, _cell, _serve

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SLMKIT_SHARED_DATA") or REPO.parent / "shared" / "data")


@dataclass
class Spec:
    """The task the cycle runs on, read from the project: requests are records of its input fields."""

    name: str
    fields: list[str]
    label: str
    labels: list[str]
    traffic: Path

    @classmethod
    def of(cls, project: Path, traffic: Path) -> Spec:
        from slmkit.config import load_config

        config = load_config(project, check_files=False)
        label = config.task.label_field
        assert label is not None, "the cycle measures label accuracy: the task needs a label_field"
        labels = [str(v) for v in config.output_schema()["properties"][label]["enum"] if v is not None]
        return cls(config.task.name, list(config.task.input_fields), label, labels, traffic)

    def message(self, row: dict[str, Any]) -> list[dict[str, str]]:
        return [{"role": "user", "content": json.dumps({f: row[f] for f in self.fields}, ensure_ascii=False)}]

    def rotated(self, label: str) -> str:
        """A wrong label, for the corrupted review: the next one in the schema's order."""
        return self.labels[(self.labels.index(label) + 1) % len(self.labels)]


SPEC: Spec  # set by main()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=["good", "bad", "both", "other"], default="both")
    parser.add_argument("--project", type=Path, default=REPO / ".demo" / "support-tickets")
    parser.add_argument("--work", type=Path, default=REPO / ".cycle")
    parser.add_argument("--unshifted", type=int, default=150)
    parser.add_argument("--shifted", type=int, default=200)
    parser.add_argument("--held-out", type=int, default=150)
    parser.add_argument("--queue", type=int, default=150, help="items drawn into the review queue")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between the server's alert evaluations")
    parser.add_argument("--bad-traffic", type=int, default=120, help="more tickets sent before the bad review")
    parser.add_argument("--warm-start", action="store_true", help="monitor.retrain.warm_start: true")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="override a setting")
    parser.add_argument("--shared", choices=["it_tickets"], help="run on a real shared set instead of the example")
    parser.add_argument("--base-model", default="smollm2-135m-instruct", help="--shared: the base release's model")
    parser.add_argument("--base-set", action="append", default=[], metavar="KEY=JSON", help="--shared: base settings")
    args = parser.parse_args()
    global SPEC
    traffic = REPO / "examples" / "support-tickets" / "traffic"
    if args.shared:
        args.work = REPO / f".cycle-{args.shared}" if args.work == REPO / ".cycle" else args.work
        args.project, traffic = prepare_shared(args.shared, args.work, args.base_model, args.base_set)
    elif not (args.project / ".slmkit" / "registry.db").exists():
        print(f"no release at {args.project}: running `slmkit demo` first (10 to 25 minutes)", flush=True)
        subprocess.run([sys.executable, "-m", "slmkit", "demo"], cwd=REPO, check=True)
    SPEC = Spec.of(args.project, traffic)
    project = args.work / SPEC.name
    if args.phase in ("good", "both"):
        good(args, project)
    if args.phase in ("bad", "both"):
        bad(args, project)
    if args.phase == "other":
        other(args)


# --- the good cycle -------------------------------------------------------------------------------


def good(args: argparse.Namespace, project: Path) -> None:
    if project.exists():
        shutil.rmtree(project)
    ignore = shutil.ignore_patterns("requests.db*", "runs", "monitor", "replay", "keys.db*", "review", "retrain*")
    shutil.copytree(args.project, project, ignore=ignore)
    _configure(project, args)
    print(f"== project {project} (a copy of {args.project}); settings: {_settings_line(project)}", flush=True)
    shifted = _rows("shifted")
    sent_shifted, held_out = shifted[: args.shifted], shifted[len(shifted) - args.held_out :]
    assert args.shifted + args.held_out <= len(shifted), "--shifted and --held-out overlap"
    labels: dict[str, dict[str, Any]] = {}
    server, url = _serve(project)
    try:
        fired = _replay(project, url, _rows("unshifted")[: args.unshifted], sent_shifted, labels)
        _save(args.work / "labels.json", labels)
        began = time.perf_counter()
        seconds: dict[str, float] = {}
        print("\n== the cycle: review queue -> answers -> retrain -> release", flush=True)
        seconds["review queue"] = _timed(
            lambda: _cli("review", "queue", "--traffic", "--size", str(args.queue), "-p", project)
        )
        out = project / ".slmkit" / "review" / "traffic"
        seconds["export"] = _timed(lambda: _cli("review", "export", "--traffic", "--out", out, "-p", project))
        counts = _answer(out / "queue.csv", labels, corrupt=False)
        print(f"answered with the traffic's own labels (a stand-in reviewer): {counts}", flush=True)
        seconds["import"] = _timed(
            lambda: _cli("review", "import", out / "queue.csv", "--reviewer", "traffic-labels", "-p", project)
        )
        # The project as the retrain finds it, for `--phase other` (not counted in the cycle's time).
        began += _snapshot(project, args.work / "before-retrain")
        retrain_began = time.perf_counter()
        due = ["--if-due"] if fired else ["--why", "bench: the drift alert did not fire; retraining anyway"]
        code = _cli("retrain", *due, "-q", "-p", project, check=False)
        seconds["retrain"] = time.perf_counter() - retrain_began
        if code != 0:
            raise SystemExit(f"the retrain did not release (exit {code})")
        switched = _wait_for_release(url, SPEC.name, 2, _rows("unshifted")[-1], labels)
        seconds["server follows"] = switched
        total = time.perf_counter() - began
        print(f"\n== time per stage (alert -> new production release): {_stages(seconds)}")
        print(f"   total {total:.0f}s ({total / 60:.1f} min; target: under 15 min)")
        print(f"   (the drift alert fired {fired or 'never'}; the replay went on until {args.shifted} shifted were in)")
        print("\n== the shifted slice: held-out shifted tickets never sent before, through the server to both releases")
        _compare(url, held_out, project, labels)
        _save(args.work / "labels.json", labels)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=120)
    print("\n== slmkit retrain list")
    _cli("retrain", "list", "-p", project)


# --- the same retrain with other settings (e.g. warm start on or off) ----------------------------------


def other(args: argparse.Namespace) -> None:
    """Retrain a copy of the project as the good phase's retrain found it, with `--set` overrides, and
    measure the held-out slice the same way: how the settings change time and the fix."""
    labels = json.loads((args.work / "labels.json").read_text())
    project = args.work / "other" / SPEC.name
    if project.parent.exists():
        shutil.rmtree(project.parent)
    shutil.copytree(args.work / "before-retrain", project)
    _configure_overrides(project, args.set, warm_start=args.warm_start)
    print(f"== the same retrain with other settings: {_settings_line(project)}", flush=True)
    began = time.perf_counter()
    code = _cli("retrain", "-q", "--why", f"bench: the same retrain with {args.set}", "-p", project, check=False)
    print(f"retrain exit {code} after {time.perf_counter() - began:.0f}s")
    server, url = _serve(project)
    try:
        held_out = _rows("shifted")[len(_rows("shifted")) - args.held_out :]
        _compare(url, held_out, project, labels)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=120)


# --- the bad retrain ------------------------------------------------------------------------------


def bad(args: argparse.Namespace, project: Path) -> None:
    labels = json.loads((args.work / "labels.json").read_text())
    server, url = _serve(project)
    try:
        # More traffic: unshifted tickets not sent yet (the last one was the probe).
        rest = _rows("unshifted")[args.unshifted : -1][: args.bad_traffic]
        print(f"\n== {len(rest)} more tickets through the server (answered by {SPEC.name}@2)")
        _send(url, rest, labels)
        _save(args.work / "labels.json", labels)
        out = project / ".slmkit" / "review" / "traffic-bad"
        _cli("review", "queue", "--traffic", "--size", str(args.queue), "-p", project)
        _cli("review", "export", "--traffic", "--out", out, "-p", project)
        counts = _answer(out / "queue.csv", labels, corrupt=True)
        print(f"answered with CORRUPTED labels (every {SPEC.label} rotated to a wrong one): {counts}", flush=True)
        _cli("review", "import", out / "queue.csv", "--reviewer", "corrupted-labels", "-p", project)
        began = time.perf_counter()
        code = _cli("retrain", "-q", "--why", "bench: a batch of corrupted review answers", "-p", project, check=False)
        print(f"retrain exit {code} after {time.perf_counter() - began:.0f}s")
        reply = _ask(url, SPEC.name, rest[0])
        print(f"production after this retrain: {_production(project)}; the server answers as {reply['model']}")
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=120)
    print("\n== slmkit retrain list")
    _cli("retrain", "list", "-p", project)
    print("\n== slmkit releases audit (the retrain's own entries)")
    out = subprocess.run([sys.executable, "-m", "slmkit", "releases", "audit", "-p", str(project)],
                         capture_output=True, text=True, check=False).stdout  # fmt: skip
    print("\n".join(line for line in out.splitlines() if "retrain" in line)[:4000])


# --- a real shared set ----------------------------------------------------------------------------


def prepare_shared(name: str, work: Path, base_model: str, overrides: list[str]) -> tuple[Path, Path]:
    """The base project (released once, here, with the --set overrides) and its traffic files; made once
    per --work."""
    base, traffic = work / "base" / "it-tickets", work / "traffic"
    if (base / ".slmkit" / "registry.db").exists() and (traffic / "shifted.jsonl").exists():
        return base, traffic
    import yaml

    rng = random.Random(7)
    new_queue = "Purchase"

    def rows(file: str) -> list[dict[str, Any]]:
        out = []
        for line in (SHARED / name / file).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            out.append({"text": record["input"], "output": json.loads(record["output"])})
        return out

    train_file, test_file = rows("train.jsonl"), rows("test.jsonl")
    rng.shuffle(train_file)
    rng.shuffle(test_file)
    queues = sorted({r["output"]["queue"] for r in train_file})
    old = [r for r in train_file if r["output"]["queue"] != new_queue]
    training = _stratified(old, 640, rng)
    gold = _stratified(test_file, 240, rng)
    taken = {r["text"] for r in training + gold}
    usual = [r for r in test_file if r["output"]["queue"] != new_queue and r["text"] not in taken]
    purchases = [r for r in train_file if r["output"]["queue"] == new_queue and r["text"] not in taken]
    unshifted = [{**r, "shift": None} for r in usual[:200]]
    mixed = [{**r, "shift": None} for r in usual[200:440]] + [{**r, "shift": f"new queue: {new_queue}"}
                                                               for r in purchases[:160]]  # fmt: skip
    rng.shuffle(mixed)
    traffic.mkdir(parents=True, exist_ok=True)
    for file, part in (("unshifted", unshifted), ("shifted", mixed)):
        (traffic / f"{file}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
    if base.exists():
        shutil.rmtree(base)
    (base / "data").mkdir(parents=True)
    # A planted secret the PII stage must catch (the release checklist asks for one, as the example has).
    canary = "4111 1111 1111 1111"
    training = [
        *training,
        {"text": f"card {canary} charged twice laptop invoice please refund", "output": {"queue": "Miscellaneous"}},
    ]
    for file, part in (("train", training), ("gold", gold)):
        (base / "data" / f"{file}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
    project = {
        "base_model": base_model,
        "task": {
            "name": "it-tickets",
            "input_fields": ["text"],
            "system_prompt": "Route the IT service-desk ticket to the team queue that should handle it. "
            "The ticket text is lower-cased with stop words removed.",
            "output_schema": {
                "type": "object",
                "additionalProperties": False,
                "required": ["queue"],
                "properties": {"queue": {"enum": queues}},
            },
            "label_field": "queue",
        },
        "data": {
            "sources": [{"path": "data/train.jsonl"}, {"path": "data/gold.jsonl", "role": "gold"}],
            "pii": {"canaries": [canary]},
        },
        "eval": {
            "compare_base": False,
            "decoding": "as_served",
            "forgetting": False,
            "gates": ["schema_validity >= 0.95", "label_accuracy >= 0.5"],
        },
    }
    (base / "slmkit.yaml").write_text(yaml.safe_dump(project, sort_keys=False))
    _apply(base, overrides)
    print(f"== {name}: the base release, trained on {len(training)} tickets of {len(queues) - 1} queues "
          f"({new_queue} left out); gold: {len(gold)} tickets of its test file", flush=True)  # fmt: skip
    began = time.perf_counter()
    for command in (["data", "build"], ["train", "-q"], ["eval"], ["release", "-m", "base release"]):
        _cli(*command, "-p", base)
    print(f"   base release made in {time.perf_counter() - began:.0f}s", flush=True)
    return base, traffic


def _stratified(rows: list[dict[str, Any]], n: int, rng: random.Random) -> list[dict[str, Any]]:
    """About n rows, each queue in its share (at least 10 of each)."""
    by: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by.setdefault(row["output"]["queue"], []).append(row)
    out = []
    for group in by.values():
        out += group[: max(10, round(n * len(group) / len(rows)))]
    rng.shuffle(out)
    return out


# --- pieces ---------------------------------------------------------------------------------------


def _configure(project: Path, args: argparse.Namespace) -> None:
    import yaml

    path = project / "slmkit.yaml"
    settings = yaml.safe_load(path.read_text())
    example = yaml.safe_load((REPO / "examples" / "support-tickets" / "slmkit.yaml").read_text())
    monitor = settings.setdefault("monitor", {})
    embeddings = monitor.get("embeddings", True)  # input drift needs them (a project may have them off)
    monitor["alerts"] = [r for r in example["monitor"]["alerts"] if embeddings or r["metric"] != "input_drift"]
    monitor["evaluate_every_s"] = args.every
    monitor["capture"] = {"share": 1.0, "retention_days": 30}
    monitor["review"] = {"size": args.queue, "random": 0.2, "low_confidence": 0.4, "flagged": 0.3, "refused": 0.1}
    monitor["retrain"] = {"on_drift_alert": True}
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    _configure_overrides(project, args.set, warm_start=args.warm_start)


def _configure_overrides(project: Path, overrides: list[str], *, warm_start: bool) -> None:
    _apply(project, [*overrides, f"monitor.retrain.warm_start={json.dumps(warm_start)}"])


def _apply(project: Path, overrides: list[str]) -> None:
    """KEY=JSON settings written into the project's slmkit.yaml."""
    import yaml

    path = project / "slmkit.yaml"
    settings = yaml.safe_load(path.read_text())
    for item in overrides:
        key, _, value = item.partition("=")
        target = settings
        *parents, last = key.split(".")
        for name in parents:
            target = target.setdefault(name, {})
        target[last] = json.loads(value)
    path.write_text(yaml.safe_dump(settings, sort_keys=False))


def _settings_line(project: Path) -> str:
    import yaml

    s = yaml.safe_load((project / "slmkit.yaml").read_text())
    train = {k: s["train"][k] for k in ("epochs", "max_steps") if k in s["train"]}
    return (
        f"capture {s['monitor']['capture']['share']:.0%}, review {s['monitor']['review']}, "
        f"retrain {s['monitor']['retrain']}, train {train}, eval gates {s['eval']['gates']}"
    )


def _rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (SPEC.traffic / f"{name}.jsonl").read_text().splitlines() if line.strip()]


def _send(url: str, rows: list[dict[str, Any]], labels: dict[str, dict[str, Any]], concurrency: int = 8) -> None:
    from slmkit.monitor.replay import replay

    requests = [SPEC.message(r) for r in rows]

    def note(i: int, reply: Any) -> None:
        if not isinstance(reply, Exception):
            labels[reply.id] = rows[i]["output"]

    stats = replay(url, SPEC.name, requests, concurrency=concurrency, on_answer=note)
    if stats.errors:
        print(f"  errors: {stats.errors}")


def _replay(project: Path, url: str, unshifted: list[dict[str, Any]], shifted: list[dict[str, Any]],
            labels: dict[str, dict[str, Any]]) -> str:  # fmt: skip
    print(f"\n== replaying {len(unshifted)} unshifted, then {len(shifted)} shifted tickets through {url}")
    began, fired = time.perf_counter(), ""
    for phase, rows in (("unshifted", unshifted), ("shifted", shifted)):
        for lo in range(0, len(rows), 25):
            _send(url, rows[lo : lo + 25], labels)
            states = _after_next_evaluation(project, len(labels))
            drift = {rule: state for rule, state in states.items() if "drift" in rule}
            shown = "  ".join(f"{rule}: {_cell(state)}" for rule, state in drift.items())
            print(f"  {phase:<10}{lo + len(rows[lo : lo + 25]):>5}  {shown}", flush=True)
            if not fired and any(s["state"] == "firing" for s in drift.values()):
                sent = lo + len(rows[lo : lo + 25])
                fired = f"after {sent} {phase} tickets, {time.perf_counter() - began:.0f}s into the replay"
    return fired


def _answer(path: Path, labels: dict[str, dict[str, Any]], *, corrupt: bool) -> dict[str, int]:
    """The stand-in reviewer: the traffic file's label is the right answer (rotated, when corrupt)."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    counts = {"accept": 0, "correct": 0, "left unanswered (not from the traffic files)": 0}
    for row in rows:
        known = labels.get(row["id"].removeprefix("requests.db#"))
        if known is None:
            counts["left unanswered (not from the traffic files)"] += 1
            continue
        right = dict(known)
        if corrupt:
            right[SPEC.label] = SPEC.rotated(right[SPEC.label])
        try:
            served = json.loads(row["answer"])
        except ValueError:
            served = None
        row["verdict"] = "accept" if served == right else "correct"
        row["correction"] = "" if row["verdict"] == "accept" else json.dumps(right)
        counts[row["verdict"]] += 1
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return counts


def _wait_for_release(url: str, model: str, version: int, probe: dict[str, Any], labels: dict[str, Any]) -> float:
    """Ask with one more ticket (its label noted: the request is captured like any) until `version` answers."""
    began = time.perf_counter()
    while True:
        reply = _ask(url, model, probe)
        labels[reply["id"]] = probe["output"]
        if reply["model"] == f"{model}@{version}":
            print(f"the running server answers as {reply['model']} (no restart)", flush=True)
            return time.perf_counter() - began
        if time.perf_counter() - began > 120:
            raise SystemExit(f"the server still answers as {reply['model']}")
        time.sleep(1.0)


def _ask(url: str, model: str, row: dict[str, Any]) -> dict[str, Any]:
    from openai import OpenAI

    client = OpenAI(base_url=url, api_key="unused", max_retries=2, timeout=600)
    reply = client.chat.completions.create(model=model, messages=SPEC.message(row))  # type: ignore[arg-type]
    return {"id": reply.id, "model": reply.model, "text": reply.choices[0].message.content}


def _compare(url: str, rows: list[dict[str, Any]], project: Path, labels: dict[str, Any]) -> None:
    """Label accuracy of v1 and v2 on the same held-out shifted tickets, paired."""
    from slmkit.eval.metrics import wilson
    from slmkit.eval.paired import mcnemar_exact, newcombe_paired

    right: dict[int, list[bool]] = {}
    for version in (1, 2):
        answers: list[dict[str, Any]] = [{} for _ in rows]
        _collect(url, f"{SPEC.name}@{version}", rows, answers, labels)
        right[version] = [_label(a.get("text")) == r["output"][SPEC.label] for a, r in zip(answers, rows, strict=True)]
    groups: dict[str, list[int]] = {"all": list(range(len(rows)))}
    for i, row in enumerate(rows):
        groups.setdefault(f"shift: {row.get('shift') or 'none (the usual tickets)'}", []).append(i)
    print(
        f"{'slice':<34}{'n':>5}  {'v1 label accuracy':<26}{'v2 label accuracy':<26}{'difference [95% CI]':<24}McNemar p"
    )
    for name, idx in groups.items():
        a, b = [right[1][i] for i in idx], [right[2][i] for i in idx]
        one, two = wilson(sum(a), len(a)), wilson(sum(b), len(b))
        both = sum(x and y for x, y in zip(a, b, strict=True))
        gained = sum(y and not x for x, y in zip(a, b, strict=True))
        lost = sum(x and not y for x, y in zip(a, b, strict=True))
        low, high = newcombe_paired(both, gained, lost, len(idx) - both - gained - lost)
        before = f"{one.value:.3f} [{one.low:.3f}-{one.high:.3f}]"
        after = f"{two.value:.3f} [{two.low:.3f}-{two.high:.3f}]"
        change = f"{two.value - one.value:+.3f} [{low:+.3f}, {high:+.3f}]"
        print(f"{name:<34}{len(idx):>5}  {before:<26}{after:<26}{change:<24}{mcnemar_exact(gained, lost):.2g}")
    report = _latest_retrain_report(project)
    print("\n== the retrain's gates on the locked gold set (its eval report)")
    for gate in report["detail"]["gates"]:
        mark = "PASS" if gate["passed"] else "FAIL"
        ci = gate.get("ci95") or [math.nan, math.nan]
        extra = f" vs {gate['compared_with']}: {gate['reason']}" if gate.get("compared_with") else ""
        print(
            f"  {mark}  {gate['gate']:<52} observed {gate['observed']:+.3f} [95% CI {ci[0]:+.3f}, {ci[1]:+.3f}]{extra}"
        )


def _collect(
    url: str, model: str, rows: list[dict[str, Any]], answers: list[dict[str, Any]], labels: dict[str, Any]
) -> None:
    from slmkit.monitor.replay import replay

    requests = [SPEC.message(r) for r in rows]

    def note(i: int, reply: Any) -> None:
        if not isinstance(reply, Exception):
            answers[i].update(model=reply.model, text=reply.choices[0].message.content)
            labels[reply.id] = rows[i]["output"]

    replay(url, model, requests, concurrency=8, on_answer=note)


def _label(text: str | None) -> str | None:
    try:
        return json.loads(text or "").get(SPEC.label)
    except (ValueError, AttributeError):
        return None


def _latest_retrain_report(project: Path) -> dict[str, Any]:
    reports = sorted((project / ".slmkit" / "retrains").glob("*.json"), key=lambda p: int(p.stem))
    return json.loads(reports[-1].read_text())


def _production(project: Path) -> str:
    conn = sqlite3.connect(project / ".slmkit" / "registry.db")
    try:
        row = conn.execute("SELECT name, version FROM aliases WHERE alias = 'production'").fetchone()
    finally:
        conn.close()
    return f"{row[0]}@{row[1]}"


def _snapshot(project: Path, dest: Path) -> float:
    """Copy the project, its live request log through SQLite's backup (the server is writing it)."""
    began = time.perf_counter()
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(project, dest, ignore=shutil.ignore_patterns("requests.db*"))
    source, target = (
        sqlite3.connect(project / ".slmkit" / "requests.db"),
        sqlite3.connect(dest / ".slmkit" / "requests.db"),
    )
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return time.perf_counter() - began


def _cli(*args: Any, check: bool = True) -> int:
    shown = " ".join(str(a).replace(str(REPO) + "/", "") for a in args)
    print(f"$ slmkit {shown}", flush=True)
    done = subprocess.run([sys.executable, "-m", "slmkit", *map(str, args)], check=False)
    if check and done.returncode != 0:
        raise SystemExit(f"slmkit {shown} exited {done.returncode}")
    return done.returncode


def _timed(fn: Any) -> float:
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def _stages(seconds: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items())


def _save(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))


if __name__ == "__main__":
    main()
