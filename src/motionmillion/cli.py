"""The ``motionmillion`` command line: one Typer app whose sub-commands mirror the workflow.

    data import-bvh | pack | stats      real mocap -> MotionMillion dataset
    tokenizer train | encode            FSQ autoencoder
    generator train                     text -> tokens prefix-LM
    evaluator train                     TMR-style text/motion evaluator
    eval tokenizer | generator | prompts
    generate                            text -> motion files
    postprocess | render | export       clean-up and files people use

Heavy libraries (torch, transformers) are imported inside the commands, so ``--help`` is instant.
"""

from __future__ import annotations

import typer

from motionmillion.data.cli import app as data_app
from motionmillion.evaluation.cli import eval_app, evaluator_app
from motionmillion.generator.cli import app as generator_app
from motionmillion.generator.cli import generate_command
from motionmillion.postprocess.cli import postprocess_command
from motionmillion.render.cli import export_command, render_command
from motionmillion.tokenizer.cli import app as tokenizer_app
from motionmillion.tokenizer.cli import eval_tokenizer_command

app = typer.Typer(help="MotionMillion: text to 3D human motion.", no_args_is_help=True, add_completion=False)
app.add_typer(data_app, name="data", help="Import motion capture, pack and inspect datasets.")
app.add_typer(tokenizer_app, name="tokenizer", help="Train the FSQ motion tokenizer and encode datasets.")
app.add_typer(generator_app, name="generator", help="Train the text-to-motion prefix-LM.")
app.add_typer(evaluator_app, name="evaluator", help="Train the text-motion evaluator.")
eval_app.command("tokenizer")(eval_tokenizer_command)
app.add_typer(eval_app, name="eval", help="Evaluate tokenizers, generators and prompt sets.")
app.command("generate")(generate_command)
app.command("postprocess")(postprocess_command)
app.command("render")(render_command)
app.command("export")(export_command)

if __name__ == "__main__":
    app()
