"""``motionmillion generator train`` and ``motionmillion generate``. Heavy imports live inside the commands."""

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
    steps: Annotated[Optional[int], typer.Option(help="Total optimisation steps.")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Sequences per process per step.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate.")] = None,
    text_encoder: Annotated[Optional[str], typer.Option(help="Hugging Face name or path; default: bundled MiniLM.")] = None,
    mixed_precision: Annotated[Optional[str], typer.Option(help="auto | bf16 | no (bf16 = autocast, fp32 weights).")] = None,
    gradient_checkpointing: Annotated[bool, typer.Option(help="Recompute activations in backward.")] = False,
    cpu: Annotated[bool, typer.Option(help="Force CPU even where CUDA exists (multi-process CPU runs use gloo).")] = False,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Override any model/training field: key=value.")] = None,
) -> None:
    """Train the generator on encoded tokens (run under `accelerate launch` for several processes)."""
    from motionmillion.generator.config import TrainConfig, apply_overrides, generator_preset
    from motionmillion.generator.train import train

    try:
        model_config = generator_preset(config, gradient_checkpointing=gradient_checkpointing)
        overrides = list(set_ or [])
        for key, value in (("steps", steps), ("batch_size", batch_size), ("lr", lr), ("mixed_precision", mixed_precision)):
            if value is not None:
                overrides.append(f"{key}={value}")
        if text_encoder is not None:
            overrides.append(f"text_encoder={text_encoder}")
        model_config, train_config = apply_overrides(model_config, TrainConfig(), overrides)
        result = train(model_config, train_config, tokens, out, cpu=cpu)
    except (ValueError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"generator written to {result}")


@app.command("convert-paper")
def convert_paper_command(
    checkpoint: Annotated[Path, typer.Argument(help="Released T2M checkpoint (e.g. motionmillion_7B_all.pth).")],
    out: Annotated[Path, typer.Option(help="Generator folder to write (config.json + model.safetensors).")],
    n_head: Annotated[Optional[int], typer.Option(help="Heads, only for shapes that are not a paper preset.")] = None,
) -> None:
    """Convert a released MotionMillion T2M checkpoint (text encoder: google/flan-t5-xl)."""
    from motionmillion.generator.paper_checkpoint import PAPER_TEXT_ENCODER, convert_paper_checkpoint

    try:
        folder = convert_paper_checkpoint(checkpoint, out, n_head)
    except ValueError as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"generator written to {folder}; pair it with text encoder {PAPER_TEXT_ENCODER} (export-pipeline --text-encoder)")
