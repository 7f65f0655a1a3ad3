"""Entry point: every command, and one place that turns user errors into messages."""

from __future__ import annotations

import logging
import os
import sys
import warnings

import typer

from slmkit.cli import (
    export,
    index,
    merge,
    monitor,
    project,
    release,
    releases,
    retrain,
    review,
    serve,
    stages,
    synth,
    ui,
)
from slmkit.errors import SlmkitError

app = typer.Typer(
    name="slmkit",
    help="Fine-tune, evaluate, release and serve small language models for narrow tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Build versioned datasets from raw inputs.", no_args_is_help=True)
releases_app = typer.Typer(
    help="List, show and compare releases; read the audit log. Alone: list.", invoke_without_command=True
)
registry_app = typer.Typer(help="The registry's records and stored artifacts.", no_args_is_help=True)
serve_app = typer.Typer(
    help="Serve releases behind an OpenAI-compatible API. Alone: serve.", invoke_without_command=True
)
review_app = typer.Typer(
    help="Human review of gold items: export what needs a look and import the verdicts, or answer item by item "
    "(queue, answer, signoff).",
    no_args_is_help=True,
)
retrain_app = typer.Typer(
    help="Retrain on reviewed production traffic; release only when every gate passes. Alone: retrain.",
    invoke_without_command=True,
)
index_app = typer.Typer(
    help="The retrieval index over data.documents: build, update, search, eval.", no_args_is_help=True
)
keys_app = typer.Typer(help="API keys: add (prints the token once), list, revoke.", no_args_is_help=True)
monitor_app = typer.Typer(
    cls=monitor.RefFirstGroup,
    help="Production traffic per release: `slmkit monitor [REF]` reports; alerts, rules, replay.",
    invoke_without_command=True,
)

app.command("init")(project.init)
app.command("validate")(project.validate)
data_app.command("build")(stages.data_build)
app.add_typer(data_app, name="data")
app.command("synth")(synth.synth)
app.command("advise")(synth.advise)
app.command("train")(stages.train)
app.command("eval")(stages.evaluate)
app.command("merge")(merge.merge)
app.command("export")(export.export)
app.command("release")(release.release)
app.command("rollback")(release.rollback)
app.command("promote")(release.promote)
app.command("check")(release.check)
review_app.command("export")(review.export)
review_app.command("import")(review.import_)
review_app.command("queue")(review.queue)
review_app.command("answer")(review.answer)
review_app.command("signoff")(review.signoff)
app.add_typer(review_app, name="review")
releases_app.callback()(releases.releases_main)
releases_app.command("list")(releases.list_releases)
releases_app.command("show")(releases.show)
releases_app.command("diff")(releases.diff)
releases_app.command("audit")(releases.audit)
releases_app.command("mirror")(releases.mirror)
app.add_typer(releases_app, name="releases")
registry_app.command("verify")(releases.verify)
app.add_typer(registry_app, name="registry")
serve_app.callback()(serve.serve)
keys_app.command("add")(serve.keys_add)
keys_app.command("list")(serve.keys_list)
keys_app.command("revoke")(serve.keys_revoke)
serve_app.add_typer(keys_app, name="keys")
app.add_typer(serve_app, name="serve")
index_app.command("build")(index.build)
index_app.command("update")(index.update)
index_app.command("search")(index.search)
index_app.command("eval")(index.evaluate)
app.add_typer(index_app, name="index")
app.command("loadtest")(serve.loadtest)
monitor_app.callback()(monitor.monitor)
monitor_app.command("alerts")(monitor.alerts)
monitor_app.command("rules")(monitor.rules)
monitor_app.command("replay")(monitor.replay)
app.add_typer(monitor_app, name="monitor")
retrain_app.callback()(retrain.retrain)
retrain_app.command("schedule")(retrain.schedule)
retrain_app.command("list")(retrain.history)
app.add_typer(retrain_app, name="retrain")
app.command("ui")(ui.ui)
app.command("demo")(serve.demo)


def main() -> None:
    """Run the CLI; a SlmkitError prints as 'error: ...' (no traceback) with its exit code."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # A deprecation inside peft's calls into transformers; nothing a user can act on.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    # bitsandbytes' CPU backend warns on import that it cannot fetch a fused kernel from the hub;
    # offline that is expected, and anything that imports transformers (the data build's
    # embeddings too) may import it.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    try:
        app(standalone_mode=False)
    except SlmkitError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":
    main()
