"""``motionmillion generator train | convert-paper``. Heavy imports live inside the commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

app = typer.Typer(help="Train the text-to-motion prefix-LM.", no_args_is_help=True, add_completion=False)


@app.command("train")
def train_command(
    tokens: Annotated[Path, typer.Option("--tokens", help="Encoded-tokens folder (motionmillion tokenizer encode).")],
    out: Annotated[Path, typer.Option("--out", help="Run folder; an existing run resumes from its last checkpoint.")],
    config: Annotated[str, typer.Option("--config", help="Model preset: cpu-tiny, cpu-small, 44M ... 7B.")] = "cpu-small",
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override a setting: key=value or section.key=value "
                    "(sections model, train), e.g. --set steps=3000 --set lr=8e-4 --set n_layer=6")] = None,
    threads: Annotated[int, typer.Option("--threads", help="CPU threads per process (0 = torch default).")] = 0,
    cpu: Annotated[bool, typer.Option(help="Force CPU even where CUDA exists (multi-process CPU runs use gloo).")] = False,
) -> None:
    """Train the generator on encoded tokens (run under `accelerate launch` for several processes)."""
    from motionmillion.generator.config import PRESETS
    from motionmillion.generator.train import train
    from motionmillion.training import requested_run

    run_config = requested_run(PRESETS, config, set_, threads)
    result = train(run_config, tokens, out, cpu=cpu)
    typer.echo(f"generator written to {result}")


@app.command("convert-paper")
def convert_paper_command(
    checkpoint: Annotated[Path, typer.Argument(help="Released T2M checkpoint (e.g. motionmillion_7B_all.pth).")],
    out: Annotated[Path, typer.Option(help="Generator folder to write (config.json + model.safetensors).")],
    n_head: Annotated[Optional[int], typer.Option(help="Heads, only for shapes that are not a paper preset.")] = None,
) -> None:
    """Convert a released MotionMillion T2M checkpoint (text encoder: google/flan-t5-xl)."""
    from motionmillion.generator.paper_checkpoint import PAPER_TEXT_ENCODER, convert_paper_checkpoint

    folder = convert_paper_checkpoint(checkpoint, out, n_head)
    typer.echo(f"generator written to {folder}; pair it with text encoder {PAPER_TEXT_ENCODER} (export-pipeline --text-encoder)")
