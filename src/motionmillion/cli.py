"""The ``motionmillion`` command line: one Typer app whose sub-commands mirror the workflow.

    data import-bvh | recaption | pack | stats   real mocap -> MotionMillion dataset
    tokenizer train | encode | convert-paper     FSQ autoencoder
    generator train | convert-paper              text -> tokens prefix-LM
    evaluator train                              TMR-style text/motion evaluator
    eval tokenizer | generator | prompts
    generate | inbetween | edit | export-pipeline   cross-stage: text (and motions) -> motion files, pipeline folders
    postprocess | render | export                clean-up and files people use

Heavy libraries (torch, transformers) are imported inside the commands, so ``--help`` is instant.
Every error becomes one line and an exit code here (:mod:`motionmillion.errors`), never a traceback.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from typer.core import TyperGroup

try:  # typer >= 0.20 vendors its own click
    from typer._click.exceptions import ClickException as _TyperClickException
except ImportError:  # pragma: no cover - older typer uses click itself
    _TyperClickException = click.ClickException

from motionmillion.errors import exit_code_for, one_line

# Exceptions that already are the command line's own way to end (help, usage errors, exit codes).
_USAGE_ERRORS = (click.ClickException, _TyperClickException)
_CLI_EXITS = (typer.Exit, typer.Abort, click.exceptions.Exit, *_USAGE_ERRORS)


class _OneLineErrors(TyperGroup):
    """Runs every sub-command; turns any exception into ``error: <one line>`` and an exit code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except _USAGE_ERRORS as err:  # a bad option or argument, found while parsing
            click.echo(f"error: {' '.join(err.format_message().split())} (see --help)", err=True)
            sys.exit(err.exit_code)
        except (typer.Abort, click.exceptions.Abort):
            click.echo("error: aborted", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)

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
    # SIGTERM unwinds like Ctrl-C (finally blocks remove half-written temp files), exit status 143.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------- cross-stage commands
def read_prompt_file(path: Path) -> list[str]:
    """One prompt per line; blank lines and lines starting with '#' are skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"--prompts {path}: cannot read the prompt file ({err})") from err
    prompts = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not prompts:
        raise ValueError(f"--prompts {path}: no prompts in the file")
    return prompts


@app.command("generate")
def generate_command(
    prompt: Annotated[Optional[str], typer.Argument(help="The text to animate.")] = None,
    prompts: Annotated[Optional[Path], typer.Option("--prompts", help="A file with one prompt per line.")] = None,
    out: Annotated[Path, typer.Option("--out", help="Output folder (must be new or empty, or use --overwrite).")] = Path("generated"),
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the files of an earlier run in --out.")] = False,
    seconds: Annotated[Optional[float], typer.Option(help="Target duration in seconds (1 to 10); default: the model decides.")] = None,
    num_samples: Annotated[int, typer.Option("--num-samples", help="Motions per prompt.")] = 1,
    seed: Annotated[Optional[int], typer.Option(help="Base seed (sample j of prompt i uses seed + i*N + j); default: random, printed.")] = None,
    model: Annotated[Optional[Path], typer.Option("--model", help="Pipeline folder; default: the bundled model.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Motions sampled together.")] = 16,
    guidance: Annotated[Optional[float], typer.Option(help="Classifier-free guidance scale (1 = off); default: the model's.")] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (0 = greedy).")] = 1.0,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Keep the k most likely tokens.")] = None,
    top_p: Annotated[Optional[float], typer.Option("--top-p", help="Nucleus sampling mass.")] = 0.95,
    fix_feet: Annotated[bool, typer.Option("--fix-feet", help="Remove foot sliding (post-process).")] = False,
    no_video: Annotated[bool, typer.Option("--no-video", help="Skip the MP4 files.")] = False,
    glb: Annotated[bool, typer.Option("--glb", help="Also write a .glb (a skinned mannequin playing the motion).")] = False,
    fbx: Annotated[bool, typer.Option("--fbx", help="Also write a .fbx (the mannequin, by Blender run headless: "
                   "needs `blender` on PATH).")] = False,
    device: Annotated[Optional[str], typer.Option(help="cpu or cuda; default: cuda when available.")] = None,
    timeline: Annotated[Optional[str], typer.Option("--timeline", help="One motion from a sequence of prompts: a JSON "
                        "file or 'a person walks forward:3; a person bows:2' (PROMPT:SECONDS; ...).")] = None,
    continue_from: Annotated[Optional[Path], typer.Option("--continue-from", help="Continue this motion "
                             "(.npy 272 features or joints, .bvh): the output is it followed by the new frames.")] = None,
    rewrite: Annotated[bool, typer.Option("--rewrite", help="Rewrite each prompt into the training captions' wording "
                       "(and estimate its duration) before generating.")] = False,
    rewriter: Annotated[Optional[str], typer.Option("--rewriter", help="With --rewrite: a local Hugging Face causal LM "
                        "(path) instead of the model's caption bank, e.g. Llama-3.1-8B-Instruct.")] = None,
    keyframes: Annotated[Optional[Path], typer.Option("--keyframes", help="Poses to reach: a JSON file of "
                         "[{\"time\": s, \"joints\": 22 x [x, y, z] or {\"right_wrist\": [x, y, z]}}] (metres, world).")] = None,
    path: Annotated[Optional[str], typer.Option("--path", help="Pelvis path to follow: a JSON file of [[t, x, z], ...] "
                    "or 't,x,z; t,x,z' (seconds, metres).")] = None,
) -> None:
    """Generate motions from text: per sample a .npy (272 features), _joints.npy, .bvh, .mp4, .json (and .glb, .fbx)."""
    from motionmillion.pipeline import ModelLimits, make_plan, read_timeline
    from motionmillion.pipeline.requests import check_device, read_keyframes, read_path
    from motionmillion.utils.output_folder import OutputFolder

    # Everything that needs no weights is checked before loading them (the limits come from config.json).
    if sum(value is not None for value in (prompt, prompts, timeline)) != 1:
        raise ValueError("give one of a PROMPT, --prompts FILE or --timeline SPEC")
    for option, value in (("--batch-size", batch_size), ("--num-samples", num_samples)):
        if value < 1:
            raise ValueError(f"{option} must be >= 1, got {value}")
    texts = [prompt] if prompt is not None else read_prompt_file(prompts) if prompts is not None else None
    segments = read_timeline(timeline) if timeline is not None else None
    folder = OutputFolder(out, overwrite=overwrite)
    folder.check()
    device = check_device(device)
    if fbx:  # before the weights load, not after the first motion
        from motionmillion.export.fbx import require_blender

        require_blender()
    plan = make_plan(ModelLimits.read(model), texts, seconds, num_samples, seed, timeline=segments,
                     prefix=continue_from, rewrite=rewrite, rewriter=rewriter, batch_size=batch_size, fix_feet=fix_feet,
                     guidance=guidance, temperature=temperature, top_k=top_k, top_p=top_p,
                     keyframes=read_keyframes(keyframes) if keyframes is not None else None,
                     path=read_path(path) if path is not None else None)  # fmt: skip
    prompts_count = 1 if plan.kind == "timeline" else len(texts)
    write_motions(plan, model, device, folder, out, not no_video, glb, rewrite,
                  f"{prompts_count} prompt(s) x {num_samples} sample(s)", fbx=fbx)


def write_motions(plan, model, device, folder, out: Path, video: bool, glb: bool, rewrite: bool = False,
                  what: str = "1 motion", fbx: bool = False) -> None:
    """Load the pipeline, carry out ``plan`` and write each motion's files into ``out`` (the files of
    ``Motion.save``), one summary line; a motion that cannot be written is listed and the command fails."""
    import time

    from tqdm.auto import tqdm

    from motionmillion.errors import Failure
    from motionmillion.motion.motion import file_stem
    from motionmillion.pipeline import MotionPipeline

    pipe = MotionPipeline.from_pretrained(model, device=device)
    started = time.time()
    failures: list[tuple[int, str, str]] = []
    written = 0
    total = 1 if plan.kind == "timeline" else len(plan.requests)
    with folder, tqdm(total=total, desc="generate", unit="motion", disable=total < 2) as bar:
        samples = {i: r.meta.get("sample_index", 0) for i, r in enumerate(plan.requests)}
        for motion in pipe.run(plan):
            index = motion.meta.get("prompt_index", 0)
            _say_understood(motion.meta, rewrite)
            _say_duplicate(motion.meta, samples)
            stem = f"{index + 1:03d}_{file_stem(motion.text)}_s{motion.meta.get('sample_index', 0)}"
            try:
                files = motion.save(out, stem, video=video, gltf=glb, fbx=fbx)
                folder.add(*files.values())
                written += 1
            except (ValueError, OSError, RuntimeError) as err:  # one bad sample must not stop a batch
                failures.append((index + 1, motion.text, one_line(err)))
            bar.update(1)
    typer.echo(f"{written} motion(s) written to {out} in {time.time() - started:.1f} s ({what}, seed {plan.seed})",
               err=True)  # fmt: skip
    if failures:
        for line, text, error in failures:
            typer.echo(f"  prompt {line} ({text[:50]!r}): {error}", err=True)
        raise Failure(f"{len(failures)} of {total} motion(s) could not be written (listed above)")


def _say_understood(meta: dict, rewrite: bool) -> None:
    """Once per prompt (its first sample): what it was understood as (when rewritten) and its warnings."""
    if meta.get("sample_index", 0):
        return
    line = meta.get("prompt_index", 0) + 1
    if rewrite and "understood_as" in meta:
        typer.echo(f"prompt {line} understood as: {meta['understood_as']} (coverage {meta.get('coverage')})", err=True)
    for key in ("text_warning", "warning"):
        if meta.get(key):
            typer.echo(f"warning: prompt {line}: {meta[key]}", err=True)


def _say_duplicate(meta: dict, index_of_request: dict[int, int]) -> None:
    """A sample whose seed drew the same codes as an earlier one (the model is near-certain of the prompt)."""
    if "same_as_request" in meta:
        typer.echo(f"warning: prompt {meta.get('prompt_index', 0) + 1}: sample {meta.get('sample_index', 0)} is the "
                   f"same motion as sample {index_of_request.get(meta['same_as_request'], '?')}: the model is nearly "
                   "certain of this prompt (it memorised its training clips), other seeds draw the same", err=True)  # fmt: skip


# Options of the commands that make one motion from given motions (inbetween, edit).
_Out = Annotated[Path, typer.Option("--out", help="Output folder (must be new or empty, or use --overwrite).")]
_Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace the files of an earlier run in --out.")]
_Seed = Annotated[Optional[int], typer.Option(help="Seed; default: random, printed.")]
_Model = Annotated[Optional[Path], typer.Option("--model", help="Pipeline folder; default: the bundled model.")]
_Device = Annotated[Optional[str], typer.Option(help="cpu or cuda; default: cuda when available.")]
_NoVideo = Annotated[bool, typer.Option("--no-video", help="Skip the MP4 file.")]
_Glb = Annotated[bool, typer.Option("--glb", help="Also write a .glb.")]


@app.command("inbetween")
def inbetween_command(
    before: Annotated[Path, typer.Argument(help="The motion before the gap (.npy 272 features or joints, .bvh).")],
    after: Annotated[Path, typer.Argument(help="The motion after the gap; both stay where they stand in the world.")],
    seconds: Annotated[float, typer.Option(help="How long the new motion between them lasts.")],
    prompt: Annotated[Optional[str], typer.Option(help="What happens in between; default: a person walks.")] = None,
    out: _Out = Path("generated"), overwrite: _Overwrite = False, seed: _Seed = None, model: _Model = None,
    device: _Device = None, no_video: _NoVideo = False, glb: _Glb = False,
) -> None:
    """One motion: BEFORE, SECONDS of new motion, then AFTER (the files of generate; the .json's "generated" is
    the new frame range)."""
    _write_one(out, overwrite, model, device, not no_video, glb, prompt or "a person walks", seconds, seed=seed,
               prefix=before, after=after)  # fmt: skip


@app.command("edit")
def edit_command(
    motion: Annotated[Path, typer.Argument(help="The motion to edit (.npy 272 features or joints, .bvh).")],
    prompt: Annotated[str, typer.Option(help="What the edited part does.")],
    start: Annotated[Optional[float], typer.Option(help="First second to regenerate; default: 0.")] = None,
    end: Annotated[Optional[float], typer.Option(help="Second where the kept motion resumes; default: the end.")] = None,
    body: Annotated[Optional[str], typer.Option(help="Regenerate only this half: upper or lower (the root and the "
                    "other half are kept).")] = None,
    out: _Out = Path("generated"), overwrite: _Overwrite = False, seed: _Seed = None, model: _Model = None,
    device: _Device = None, no_video: _NoVideo = False, glb: _Glb = False,
) -> None:
    """MOTION with frames [start, end) and/or one half of the body regenerated from --prompt, every other frame
    (and joint) kept; writes the files of generate."""
    _write_one(out, overwrite, model, device, not no_video, glb, prompt, seed=seed, edit=motion, start=start, end=end,
               body=body)  # fmt: skip


def _write_one(out: Path, overwrite: bool, model, device, video: bool, glb: bool, *plan_args, **plan_options) -> None:
    """Check the output folder and the plan (no weights loaded yet), then make and write the motion."""
    from motionmillion.pipeline import ModelLimits, make_plan
    from motionmillion.pipeline.requests import check_device
    from motionmillion.utils.output_folder import OutputFolder

    folder = OutputFolder(out, overwrite=overwrite)
    folder.check()
    device = check_device(device)
    plan = make_plan(ModelLimits.read(model), *plan_args, **plan_options)
    write_motions(plan, model, device, folder, out, video, glb)


@app.command("export-pipeline")
def export_pipeline_command(
    tokenizer: Annotated[Path, typer.Option(help="Tokenizer folder (a tokenizer RUN: config.json + model.safetensors).")],
    run: Annotated[Path, typer.Option(help="Generator RUN folder (or its generator/ folder).")],
    out: Annotated[Path, typer.Option(help="Pipeline folder to write.")],
    normalization: Annotated[Optional[Path], typer.Option(help="mean.npy/std.npy folder or dataset root; default: the tokenizer run's.")] = None,
    text_encoder: Annotated[Optional[str], typer.Option(help="Text encoder; default: the one the generator was trained with.")] = None,
    evaluator: Annotated[Optional[Path], typer.Option(help="Optional evaluator folder to include.")] = None,
    text_pool: Annotated[Optional[Path], typer.Option("--text-pool", help="HumanML3D/KIT-ML caption folder: the caption "
                         "bank also holds captions of movements the data lacks, for the coverage warning.")] = None,
) -> None:
    """Assemble a pipeline folder (tokenizer/, generator/, normalization/, text_encoder.json); with a dataset
    root as --normalization also caption_bank/ (its training captions, for coverage and --rewrite)."""
    from motionmillion.data.layout import MOTION_DIR
    from motionmillion.pipeline import MotionPipeline, build_pipeline_folder
    from motionmillion.pipeline.understanding import build_caption_bank

    folder = build_pipeline_folder(out, tokenizer, run, normalization, text_encoder, evaluator=evaluator)
    if normalization is not None and (normalization / MOTION_DIR).is_dir():
        bank = build_caption_bank(folder, normalization, text_pool)
        typer.echo(f"caption bank written to {bank}")
    MotionPipeline.from_pretrained(folder, device="cpu")  # fail now, not at the user's first prompt
    typer.echo(f"pipeline written to {folder}")


def _mount() -> None:
    from motionmillion.data.cli import app as data_app
    from motionmillion.evaluation.cli import eval_app, evaluator_app
    from motionmillion.generator.cli import app as generator_app
    from motionmillion.postprocess.cli import postprocess_command
    from motionmillion.export.cli import export_command
    from motionmillion.render.cli import render_command
    from motionmillion.serve.cli import serve_command
    from motionmillion.tokenizer.cli import app as tokenizer_app
    from motionmillion.tokenizer.cli import eval_tokenizer_command

    app.add_typer(data_app, name="data", help="Import motion capture, pack and inspect datasets.")
    app.add_typer(tokenizer_app, name="tokenizer", help="Train the FSQ motion tokenizer and encode datasets.")
    app.add_typer(generator_app, name="generator", help="Train the text-to-motion prefix-LM.")
    app.add_typer(evaluator_app, name="evaluator", help="Train the text-motion evaluator.")
    eval_app.command("tokenizer")(eval_tokenizer_command)
    app.add_typer(eval_app, name="eval", help="Evaluate tokenizers, generators and prompt sets.")
    app.command("postprocess")(postprocess_command)
    app.command("render")(render_command)
    app.command("export")(export_command)
    app.command("serve")(serve_command)


_mount()

if __name__ == "__main__":
    sys.exit(app())
