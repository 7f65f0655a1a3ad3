"""`slmkit merge`: write a run's adapter folded into its base model, optionally verified on the gold set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from slmkit.cli.common import ProjectOption, load, say
from slmkit.errors import StageError


def merge(
    run: Annotated[str | None, typer.Argument(help="Training run id (default: the latest).")] = None,
    project: ProjectOption = Path("."),
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Directory to write (default: .slmkit/runs/<run>/merged).")
    ] = None,
    dtype: Annotated[
        Literal["float32", "bfloat16"], typer.Option("--dtype", help="Weights of the merged model.")
    ] = "float32",
    verify: Annotated[
        bool, typer.Option("--verify", help="Compare with base + unmerged adapter on the gold set.")
    ] = False,
    limit: Annotated[int | None, typer.Option("--limit", min=1, help="Verify on the first N gold items only.")] = None,
) -> None:
    """Merge a run's adapter into its base model: one directory any engine loads without PEFT."""
    from slmkit.train.merge import run_merge

    result = run_merge(load(project, check_files=False), run, out_dir=out, dtype=dtype, verify=verify, limit=limit)
    for line in result.summary_lines():
        say(line)
    if not result.consistent:
        raise StageError(
            f"the merged model answers differently from base + adapter on {result.differing} gold item(s) in float32",
            hint="see merge.json in the run folder; the merge is not safe to serve",
        )
