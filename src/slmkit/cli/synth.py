"""`slmkit synth` and `slmkit advise`: parse, call one function, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from slmkit.cli.common import ProjectOption, load, say


def synth(
    project: ProjectOption = Path("."),
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Dataset version whose rows seed it (default: the latest real one).")
    ] = None,
    max_calls: Annotated[
        int | None, typer.Option("--max-calls", help="New teacher and judge calls this run may make (synth.max_calls).")
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and its cost; ask nothing.")] = False,
) -> None:
    """Write synthetic rows with a teacher model, check every one, and save real + synthetic as a dataset version."""
    from slmkit.data.synth import run_synth

    result = run_synth(load(project), dataset=dataset, max_calls=max_calls, dry_run=dry_run, log=say)
    for line in result.summary_lines():
        say(line)


def _flag(name: str, help_text: str) -> Any:
    dashed = name.replace("_", "-")
    return typer.Option(f"--{dashed}/--not-{dashed}", help=help_text, show_default=False)


def advise(
    project: Annotated[
        Path | None,
        typer.Option("--project", "-p", help="Project whose data and evals to read (default: here, if any)."),
    ] = None,
    bounded: Annotated[bool | None, _flag("bounded", "A fixed label set or output format?")] = None,
    repetitive: Annotated[bool | None, _flag("repetitive", "The same kind of request again and again?")] = None,
    measurable: Annotated[bool | None, _flag("measurable", "Right answers checkable on a gold set?")] = None,
    format_sensitive: Annotated[
        bool | None, _flag("format-sensitive", "Format, tone or routing must be exact?")
    ] = None,
    changing_facts: Annotated[bool | None, _flag("changing-facts", "Answers rest on facts that change?")] = None,
    citations: Annotated[bool | None, _flag("citations", "Answers must cite their source?")] = None,
    access_groups: Annotated[bool | None, _flag("access-groups", "User groups see different documents?")] = None,
    latency_ms: Annotated[int | None, typer.Option("--latency-ms", help="Latency budget per answer (ms).")] = None,
    target: Annotated[float | None, typer.Option(help="Gold-set score the task needs (advise.target).")] = None,
    quick_eval: Annotated[
        int, typer.Option("--quick-eval", metavar="N", help="Measure the base model zero-shot on N gold items.")
    ] = 0,
    interactive: Annotated[bool, typer.Option("--interactive", "-i", help="Ask the questions left open.")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", help="Where to write the starter sections (default: slmkit.advice.yaml).")
    ] = None,
) -> None:
    """Fine-tune, retrieve, both or neither: the playbook's questions, your project's evidence, and why."""
    from slmkit.advise import run_advise
    from slmkit.config import CONFIG_FILE

    root = project or Path(".")
    has_project = (root / CONFIG_FILE).is_file() if root.is_dir() else root.is_file()
    config = load(root) if has_project or project is not None else None
    flags = {
        "bounded": bounded,
        "repetitive": repetitive,
        "measurable": measurable,
        "format_sensitive": format_sensitive,
        "changing_facts": changing_facts,
        "citations": citations,
        "access_groups": access_groups,
        "latency_ms": latency_ms,
        "target": target,
    }
    where = out or ((config.root if config is not None else Path(".")) / "slmkit.advice.yaml")
    result = run_advise(config, flags, ask=_prompt if interactive else None, quick_eval=quick_eval, out=where, log=say)
    for line in result.summary_lines():
        say(line)


def _prompt(name: str, text: str) -> Any:
    """One question on the terminal: y / n (a number for the latency budget); blank skips it."""
    if name == "latency_ms":
        reply = typer.prompt(f"{text}", default="", show_default=False).strip()
        return int(reply) if reply.isdigit() and int(reply) > 0 else None
    reply = typer.prompt(f"{text} [y/n, blank: skip]", default="", show_default=False).strip().lower()
    return True if reply in ("y", "yes") else False if reply in ("n", "no") else None
