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


def export_pipeline_command(
    tokenizer: Annotated[Path, typer.Option(help="Tokenizer folder (a tokenizer RUN: config.json + model.safetensors).")],
    run: Annotated[Path, typer.Option(help="Generator RUN folder (or its generator/ folder).")],
    out: Annotated[Path, typer.Option(help="Pipeline folder to write.")],
    normalization: Annotated[Optional[Path], typer.Option(help="mean.npy/std.npy folder or dataset root; default: the tokenizer run's.")] = None,
    text_encoder: Annotated[Optional[str], typer.Option(help="Text encoder; default: the one the generator was trained with.")] = None,
    evaluator: Annotated[Optional[Path], typer.Option(help="Optional evaluator folder to include.")] = None,
) -> None:
    """Assemble a pipeline folder (tokenizer/, generator/, normalization/, text_encoder.json)."""
    from motionmillion.pipeline import MotionPipeline, build_pipeline_folder

    try:
        folder = build_pipeline_folder(out, tokenizer, run, normalization, text_encoder, evaluator=evaluator)
        MotionPipeline.from_pretrained(folder, device="cpu")  # fail now, not at the user's first prompt
    except (ValueError, FileNotFoundError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"pipeline written to {folder}")


def read_prompt_file(path: Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with '#' are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read the prompt file ({err})") from err
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise ValueError(f"{path}: no prompts in the file")
    return prompts


def _slug(text: str, limit: int = 40) -> str:
    import re

    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:limit].strip("_")
    return slug or "prompt"


def generate_command(
    prompt: Annotated[Optional[str], typer.Argument(help="The text to animate.")] = None,
    prompts: Annotated[Optional[Path], typer.Option("--prompts", help="A file with one prompt per line.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("generated"),
    seconds: Annotated[Optional[float], typer.Option(help="Target duration (0 < s <= 10); default: the model decides.")] = None,
    num_samples: Annotated[int, typer.Option("--num-samples", help="Motions per prompt.")] = 1,
    seed: Annotated[Optional[int], typer.Option(help="Base seed (sample j of prompt i uses seed + i*N + j).")] = None,
    model: Annotated[Optional[Path], typer.Option("--model", help="Pipeline folder; default: the bundled model.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Motions sampled together.")] = 16,
    guidance: Annotated[Optional[float], typer.Option(help="Classifier-free guidance scale (1 = off).")] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0 = greedy).")] = 1.0,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Keep the k most likely tokens.")] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", help="Nucleus sampling mass.")] = 0.95,
    fix_feet: Annotated[bool, typer.Option("--fix-feet", help="Remove foot sliding (post-process).")] = False,
    no_video: Annotated[bool, typer.Option("--no-video", help="Skip the MP4 files.")] = False,
    device: Annotated[Optional[str], typer.Option(help="cpu or cuda; default: cuda when available.")] = None,
) -> None:
    """Generate motions from text: per sample a .npy (272 features), _joints.npy, .bvh, .mp4 and .json."""
    import logging
    import time

    from rich.console import Console
    from tqdm.auto import tqdm

    from motionmillion.pipeline import MotionPipeline, PipelineError, PromptError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    console = Console(stderr=True, soft_wrap=True)  # never wrap file paths
    try:
        if (prompt is None) == (prompts is None):
            raise PromptError('give either a PROMPT or --prompts FILE (not both)')
        texts = [prompt] if prompt is not None else read_prompt_file(prompts)
        if batch_size < 1:
            raise PromptError(f"--batch-size must be >= 1, got {batch_size}")
        pipe = MotionPipeline.from_pretrained(model, device=device)
        # Validate every prompt and option up front, so a bad line fails before any work.
        pipe._plan(texts, seconds, num_samples, seed if seed is not None else 0)
    except (PromptError, PipelineError, ValueError, FileNotFoundError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    if seed is None:
        import random

        seed = random.SystemRandom().randrange(2**31)
    started = time.time()
    written, failures = 0, []
    per_batch = max(1, batch_size // num_samples)
    bar = tqdm(total=len(texts) * num_samples, desc="generate", unit="motion", disable=len(texts) * num_samples < 2)
    for first in range(0, len(texts), per_batch):
        chunk = texts[first : first + per_batch]
        try:
            motions = pipe(chunk, seconds=seconds, num_samples=num_samples, seed=seed + first * num_samples,
                           guidance=guidance, temperature=temperature, top_k=top_k, top_p=top_p,
                           batch_size=batch_size)  # fmt: skip
        except (ValueError, RuntimeError) as err:
            failures += [(first + i + 1, text, str(err)) for i, text in enumerate(chunk)]
            bar.update(len(chunk) * num_samples)
            continue
        for motion in motions:
            index = first + motion.meta["prompt_index"]
            stem = f"{index + 1:03d}_{_slug(motion.text)}_s{motion.meta['sample_index']}"
            try:
                if fix_feet:
                    from motionmillion.motion import Motion
                    from motionmillion.postprocess import fix_foot_sliding

                    motion = Motion(fix_foot_sliding(motion.features, fps=motion.fps, source=stem), fps=motion.fps, text=motion.text,
                                    meta={**motion.meta, "fix_feet": True})  # fmt: skip
                motion = type(motion)(motion.features, fps=motion.fps, text=motion.text,
                                      meta={**motion.meta, "prompt": motion.text, "duration": round(motion.seconds, 3)})  # fmt: skip
                motion.save(out, stem, video=not no_video)
                written += 1
            except Exception as err:  # one bad sample must not stop a 126-prompt batch
                failures.append((index + 1, motion.text, f"{type(err).__name__}: {err}"))
            bar.update(1)
    bar.close()
    elapsed = time.time() - started
    console.print(f"{written} motion(s) written to {out} in {elapsed:.1f} s "
                  f"({len(texts)} prompt(s) x {num_samples} sample(s), seed {seed})")  # fmt: skip
    if failures:
        console.print(f"[red]{len(failures)} failure(s):[/red]")
        for line, text, error in failures:
            console.print(f"  prompt {line} ({text[:50]!r}): {error}")
        raise typer.Exit(1)


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
