"""`slmkit export`: a release as a PEFT adapter, a merged model or GGUF files, each checked on the gold set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from slmkit.cli.common import ProjectOption, load, say
from slmkit.errors import StageError


def export(
    fmt: Annotated[
        Literal["peft", "merged", "gguf"],
        typer.Option("--format", "-f", help="peft (adapter), merged (safetensors) or gguf (llama.cpp / Ollama)."),
    ],
    release: Annotated[
        str | None, typer.Argument(help="name, name@3 or name@alias (default: the task's release alias).")
    ] = None,
    quant: Annotated[
        str | None,
        typer.Option(
            "--quant",
            "-q",
            help="Comma-separated: gguf f16,q8_0,q4_k_m,f32 (default f16,q8_0,q4_k_m); merged f32 or bf16.",
        ),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Directory to write (default: exports/<name>-v<version>).")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Gold items to check each export on (default: export.verify_items, 32)."),
    ] = None,
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Compare each export's answers with the release's.")
    ] = True,
    project: ProjectOption = Path("."),
) -> None:
    """Export a release for other engines; each file is checked on the gold set and recorded."""
    from slmkit.train.export import run_export

    quantizations = quant.split(",") if quant else None
    result = run_export(
        load(project, check_files=False),
        release,
        fmt=fmt,
        quantizations=quantizations,
        out_dir=out,
        limit=limit,
        verify=verify,
        log=say,
    )
    for line in result.summary_lines():
        say(line)
    if result.inconsistent:
        names = ", ".join(e.path.name for e in result.inconsistent)
        raise StageError(
            f"{names} answered differently from the release it was exported from; it is recorded but not safe to use",
            hint=f"see {result.out_dir / 'exports.json'} for the differing answers",
        )
