"""``motionmillion evaluator train`` and ``motionmillion eval generator|prompts``."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

evaluator_app = typer.Typer(help="Train the text-motion evaluator.", no_args_is_help=True, add_completion=False)
eval_app = typer.Typer(help="Evaluate tokenizers, generators and prompt sets.", no_args_is_help=True, add_completion=False)


@evaluator_app.callback()
def _evaluator_group() -> None:
    """Train the text-motion evaluator (kept a command group even with one command)."""


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)


PAPER_PREFIX = "paper:"
EVALUATOR_HELP = ("Evaluator folder (default: MODEL/evaluator), or paper:DIR for the paper's released evaluator "
                  "(DIR holds epoch=199.ckpt, mean.npy, std.npy, distilbert-base-uncased/; converted once into DIR/converted).")


def _resolve(model: Path | None, evaluator: str | None, allow_paper: bool = True) -> tuple[Path, str]:
    from motionmillion.errors import UsageError
    from motionmillion.pipeline import default_model_path

    model = model if model is not None else default_model_path()
    if not model.is_dir():
        raise FileNotFoundError(f"{model}: model folder not found")
    if evaluator is not None and evaluator.startswith(PAPER_PREFIX):
        if not allow_paper:
            raise UsageError(f"--evaluator {evaluator}: the paper's evaluator is for `eval generator` only "
                             "(its embeddings are not unit length, which the prompt-set scores assume)")  # fmt: skip
        return model, evaluator
    if evaluator is None:
        evaluator = str(model / "evaluator")
        if not (Path(evaluator) / "config.json").is_file():
            raise FileNotFoundError(f"{model} has no evaluator/ folder; pass --evaluator RUN (train one with `motionmillion evaluator train`)")
    return model, evaluator


def _load(model: Path, evaluator: str):
    """The evaluator first (its errors are about files the user just named), then the pipeline."""
    from motionmillion.evaluation.evaluator import Evaluator
    from motionmillion.pipeline import MotionPipeline

    if evaluator.startswith(PAPER_PREFIX):
        from motionmillion.evaluation.paper_evaluator import PaperEvaluator

        ev = PaperEvaluator.from_release(evaluator[len(PAPER_PREFIX) :])
    else:
        ev = Evaluator.from_pretrained(evaluator)
    return MotionPipeline.from_pretrained(model), ev


@evaluator_app.command("train")
def train_command(
    data: Path = typer.Option(..., "--data", help="Dataset folder (MotionMillion layout)."),
    out: Path = typer.Option(..., "--out", help="Run folder: evaluator files, checkpoints/, train.log, metrics.json."),
    config: str = typer.Option("small", "--config", help="Preset: tiny | small | base | paper."),
    set_: list[str] = typer.Option(None, "--set", help="Override a setting: key=value or section.key=value "
                                   "(sections model, train), e.g. --set steps=1650 --set latent_dim=256"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    threads: int = typer.Option(0, "--threads", help="CPU threads (0 = torch default)."),
) -> None:
    """Train the evaluator contrastively; resumes from OUT/checkpoints; reports test recall@1/5/10."""
    import json

    from motionmillion.evaluation.config import PRESETS
    from motionmillion.evaluation.train import train_evaluator
    from motionmillion.training import requested_run

    run_config = requested_run(PRESETS, config, set_, threads)
    report = train_evaluator(data, out, run_config, progress=progress)
    test = report["test"]
    summary = {k: round(v, 4) for k, v in test.items() if isinstance(v, float)}
    typer.echo(json.dumps({"test": summary, "sanity": report["sanity"], "weights_sha256": report["weights_sha256"]}, indent=2))


@eval_app.command("generator")
def eval_generator_command(
    model: Path = typer.Option(None, "--model", help="Pipeline folder (default: the bundled model)."),
    evaluator: str = typer.Option(None, "--evaluator", help=EVALUATOR_HELP),
    data: Path = typer.Option(..., "--data", help="Dataset folder with the real motions."),
    split: str = typer.Option("test", "--split"),
    kind: str = typer.Option("t2m_60_300", "--kind"),
    repeats: int = typer.Option(20, "--repeats", min=1),
    seed: int = typer.Option(0, "--seed"),
    own_length: bool = typer.Option(True, "--own-length/--no-own-length", help="Also evaluate with the model's own lengths."),
    mm_texts: int = typer.Option(32, "--mm-texts", help="Captions used for MultiModality (0 = skip)."),
    mm_samples: int = typer.Option(10, "--mm-samples"),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    json_out: Path = typer.Option(..., "--json", help="Result JSON; the Markdown report and figures go beside it."),
) -> None:
    """Generate for a split's captions and compare with the real motions (mean ± 95% CI over repeats)."""
    from motionmillion.evaluation.report import write_report
    from motionmillion.evaluation.protocol import GeneratorEvalConfig, evaluate_generator

    _setup_logging()
    model, evaluator = _resolve(model, evaluator)
    pipe, ev = _load(model, evaluator)
    config = GeneratorEvalConfig(split=split, kind=kind, repeats=repeats, seed=seed, own_length=own_length,
                                 mm_texts=mm_texts, mm_samples=mm_samples, batch_size=batch_size)
    result = evaluate_generator(pipe, ev, data, config, model_name=str(model), evaluator_path=evaluator)
    written = write_report(result, json_out, f"Generator evaluation: {model.name} on {kind}/{split}")
    typer.echo(f"wrote {', '.join(str(p) for p in written.values())}")


@eval_app.command("prompts")
def eval_prompts_command(
    prompts: Path = typer.Option(..., "--prompts", help="Prompt file: .txt (one per line), .jsonl (prompt/content/style) or HumanML3D .json."),
    model: Path = typer.Option(None, "--model", help="Pipeline folder (default: the bundled model)."),
    evaluator: str = typer.Option(None, "--evaluator", help="Evaluator folder (default: MODEL/evaluator)."),
    data: Path = typer.Option(None, "--data", help="Dataset for content prototypes (optional)."),
    samples: int = typer.Option(1, "--samples", min=1, help="Generations per prompt (repeats)."),
    seed: int = typer.Option(0, "--seed"),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    json_out: Path = typer.Option(..., "--json", help="Result JSON; the Markdown report goes beside it."),
    rewrite: bool = typer.Option(False, "--rewrite", help="Rewrite every prompt into the training captions' wording first."),
    rewriter: str = typer.Option(None, "--rewriter", help="With --rewrite: a local causal LM (path); default: caption-bank retrieval."),
) -> None:
    """Generate for a prompt set without motions: alignment, physical metrics, durations, failures, content retrieval."""
    from motionmillion.evaluation.report import write_report
    from motionmillion.evaluation.prompt_sets import evaluate_prompts

    _setup_logging()
    model, evaluator = _resolve(model, evaluator, allow_paper=False)
    pipe, ev = _load(model, evaluator)
    if rewrite:
        from motionmillion.pipeline.understanding import RewritingPipeline

        pipe = RewritingPipeline(pipe, rewriter)
    result = evaluate_prompts(pipe, ev, prompts, samples=samples, seed=seed, dataset_root=data,
                              batch_size=batch_size, model_name=str(model), evaluator_path=evaluator)
    written = write_report(result, json_out, f"Prompt-set evaluation: {prompts.name} with {model.name}")
    typer.echo(f"wrote {', '.join(str(p) for p in written.values())}")
