"""The ``motionmillion`` command line: one Typer app whose sub-commands mirror the workflow.

    data import-bvh | recaption | pack | stats   real mocap -> MotionMillion dataset
    tokenizer train | encode | convert-paper     FSQ autoencoder
    generator train | convert-paper              text -> tokens prefix-LM
    evaluator train                              TMR-style text/motion evaluator
    eval tokenizer | generator | prompts
    generate | export-pipeline                   cross-stage: text -> motion files, pipeline folders
    postprocess | render | export                clean-up and files people use

Heavy libraries (torch, transformers) are imported inside the commands, so ``--help`` is instant.
Every error becomes one line and an exit code here (:mod:`motionmillion.errors`), never a traceback.
"""

from __future__ import annotations

import os
import sys

import click
import typer
from typer.core import TyperGroup

try:  # typer >= 0.20 vendors its own click
    from typer._click.exceptions import ClickException as _TyperClickException
except ImportError:  # pragma: no cover - older typer uses click itself
    _TyperClickException = click.ClickException

# Exceptions that already are the command line's own way to end (help, usage errors, exit codes).
_CLI_EXITS = (typer.Exit, typer.Abort, click.exceptions.Exit, click.ClickException, _TyperClickException)

from motionmillion.errors import exit_code_for, one_line


class _OneLineErrors(TyperGroup):
    """Runs every sub-command; turns any exception into ``error: <one line>`` and an exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _CLI_EXITS:
            raise
        except (Exception, KeyboardInterrupt) as err:  # noqa: BLE001 - the one place errors meet the user
            if _debug_requested(ctx):
                raise
            click.echo(f"error: {one_line(err)}", err=True)
            raise typer.Exit(exit_code_for(err)) from None


def _debug_requested(ctx) -> bool:
    root = ctx.find_root()
    return bool((root.obj or {}).get("debug")) or os.environ.get("MOTIONMILLION_DEBUG", "") not in ("", "0")


app = typer.Typer(
    cls=_OneLineErrors,
    help="MotionMillion: text to 3D human motion.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show the Python traceback of an error."),
) -> None:
    ctx.obj = {"debug": debug}


def _mount() -> None:
    from motionmillion.data.cli import app as data_app
    from motionmillion.evaluation.cli import eval_app, evaluator_app
    from motionmillion.generator.cli import app as generator_app
    from motionmillion.generator.cli import export_pipeline_command, generate_command
    from motionmillion.postprocess.cli import postprocess_command
    from motionmillion.render.cli import export_command, render_command
    from motionmillion.tokenizer.cli import app as tokenizer_app
    from motionmillion.tokenizer.cli import eval_tokenizer_command

    app.add_typer(data_app, name="data", help="Import motion capture, pack and inspect datasets.")
    app.add_typer(tokenizer_app, name="tokenizer", help="Train the FSQ motion tokenizer and encode datasets.")
    app.add_typer(generator_app, name="generator", help="Train the text-to-motion prefix-LM.")
    app.add_typer(evaluator_app, name="evaluator", help="Train the text-motion evaluator.")
    eval_app.command("tokenizer")(eval_tokenizer_command)
    app.add_typer(eval_app, name="eval", help="Evaluate tokenizers, generators and prompt sets.")
    app.command("generate")(generate_command)
    app.command("export-pipeline")(export_pipeline_command)
    app.command("postprocess")(postprocess_command)
    app.command("render")(render_command)
    app.command("export")(export_command)


_mount()

if __name__ == "__main__":
    sys.exit(app())
