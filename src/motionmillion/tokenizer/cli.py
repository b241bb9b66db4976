"""``motionmillion tokenizer train|encode|convert-paper`` and ``motionmillion eval tokenizer``.

Heavy libraries are imported inside the commands so that ``--help`` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(help="Train the FSQ motion tokenizer and encode datasets.", no_args_is_help=True, add_completion=False)


@app.command("train")
def train_command(
    data: Path = typer.Option(..., "--data", help="Dataset folder (MotionMillion layout; packed/ makes reads faster)."),
    out: Path = typer.Option(..., "--out", help="Run folder; re-running the command resumes it."),
    config: str = typer.Option("small", "--config", help="Preset: paper, small or tiny."),
    set_: list[str] = typer.Option(None, "--set", help="Override a setting: key=value or section.key=value "
                                   "(sections model, loss, train), e.g. --set lr=3e-4 --set model.patch_size=4"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    threads: int = typer.Option(0, "--threads", help="CPU threads per process (0 = torch default). "
                                "On a CPU shared with other jobs 1 is often several times faster than 2."),
) -> None:
    """Train a tokenizer (works unchanged under `accelerate launch`)."""
    from motionmillion.tokenizer.config import PRESETS
    from motionmillion.tokenizer.train import train
    from motionmillion.training import requested_run

    run_config = requested_run(PRESETS, config, set_, threads)
    train(run_config, data, out, progress=progress)


@app.command("encode")
def encode_command(
    model: Path | None = typer.Option(None, "--model", help="Tokenizer folder or training run; default: the bundled model's."),
    data: Path = typer.Option(..., "--data", help="Dataset folder (packed or not)."),
    out: Path = typer.Option(..., "--out", help="Output folder for codes (resumable)."),
    progress: bool = typer.Option(True, "--progress/--no-progress"),
) -> None:
    """Encode every clip of a dataset to token ids for generator training."""
    from motionmillion.tokenizer.encode import encode_dataset

    encode_dataset(model or _bundled_tokenizer(), data, out, progress=progress)
    typer.echo(f"wrote {out}")


@app.command("convert-paper")
def convert_paper_command(
    checkpoint: Path = typer.Argument(..., help="Released MotionMillion FSQ checkpoint (fsq_net_6000000.pth)."),
    out: Path = typer.Option(..., "--out", help="Tokenizer folder to write (config.json + model.safetensors)."),
) -> None:
    """Convert the paper's released FSQ weights into a tokenizer folder."""
    from motionmillion.tokenizer.paper_checkpoint import load_paper_checkpoint

    load_paper_checkpoint(checkpoint).save_pretrained(out)
    typer.echo(f"wrote {out}")


def eval_tokenizer_command(
    data: Path = typer.Option(..., "--data", help="Dataset folder (packed or not)."),
    model: Path | None = typer.Option(None, "--model", help="Tokenizer folder or training run; default: the bundled model's."),
    split: str = typer.Option("test", "--split", help="train, val or test."),
    kind: str = typer.Option("tokenizer_96", "--kind", help="Split family under split/version1/."),
    max_clips: int | None = typer.Option(None, "--max-clips", help="Evaluate only the first N clips."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the metrics to this JSON file."),
) -> None:
    """Reconstruction metrics of a tokenizer on whole clips: MPJPE (mm), root and acceleration errors, code usage."""
    from motionmillion.tokenizer.evaluate import evaluate_tokenizer
    from motionmillion.utils.io import atomic_write_json

    result = evaluate_tokenizer(str(model or _bundled_tokenizer()), str(data), split=split, kind=kind, max_clips=max_clips)
    if json_out is not None:
        atomic_write_json(json_out, result)
    typer.echo(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, indent=2))


def _bundled_tokenizer() -> Path:
    from motionmillion.pipeline import default_model_path

    return default_model_path() / "tokenizer"


if __name__ == "__main__":
    app()
