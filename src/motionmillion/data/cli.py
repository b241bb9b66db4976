"""``motionmillion data ...``: import BVH motion capture, pack a dataset, print its statistics."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Import motion capture, pack and inspect datasets.", no_args_is_help=True, add_completion=False)


@app.command("import-bvh")
def import_bvh_command(
    src: Path = typer.Argument(..., help="A BVH file or a folder searched recursively for .bvh files."),
    recipe: str = typer.Option(..., "--recipe", help="bandai | cmu-dance | cmu-cc | generic"),
    out: Path = typer.Option(..., "--out", help="Dataset folder (MotionMillion layout); created or extended."),
    prefix: str = typer.Option(None, "--prefix", help="Clip name folder (default: the recipe name)."),
    workers: int = typer.Option(2, "--workers", min=1, help="Worker processes."),
    finalize: bool = typer.Option(True, "--finalize/--no-finalize", help="Recompute mean/std and splits afterwards."),
    text_pool: Path = typer.Option(
        None, "--text-pool", help="Folder of HumanML3D/KIT-ML caption files (e.g. ../shared/data/text): adds "
        "human-written captions that name the clip's movement (bandai, cmu-dance)."
    ),
) -> None:
    """Import BVH files into a dataset: clips + mirrored copies, captions, then mean/std and splits.

    Resumable: files finished by an earlier run are skipped. Bad files are listed and skipped; the command
    then exits with status 1 after importing every good file."""
    from rich.console import Console

    from motionmillion.data.importers import import_bvh
    from motionmillion.data.recipes import RECIPES
    from motionmillion.errors import Failure

    console = Console(soft_wrap=True)
    if recipe not in RECIPES:
        raise typer.BadParameter(f"unknown recipe {recipe!r}; use one of {', '.join(RECIPES)}", param_hint="--recipe")
    report = import_bvh(src, out, recipe, prefix=prefix, workers=workers, finalize=finalize, text_pool=text_pool)
    console.print(
        f"[bold]{recipe}[/bold]: imported {len(report.imported)} files ({report.clips_written} clips incl. mirrors), "
        f"already done {len(report.resumed)}, skipped {len(report.skipped)}, failed {len(report.failed)} "
        f"in {report.wall_seconds:.1f} s -> {out}"
    )
    for path, why in report.skipped:
        console.print(f"  [yellow]skipped[/yellow] {path}: {why}")
    for path, error in report.failed:
        console.print(f"  [red]failed[/red] {error if path in error else f'{path}: {error}'}")
    if report.failed:
        raise Failure(f"{len(report.failed)} of {len(report.failed) + len(report.imported) + len(report.resumed)} "
                      f"BVH file(s) could not be imported (listed above); the others are in {out}")  # fmt: skip


@app.command("recaption")
def recaption_command(
    dataset: Path = typer.Argument(..., help="Dataset folder made by import-bvh."),
    text_pool: Path = typer.Option(
        None, "--text-pool", help="Folder of HumanML3D/KIT-ML caption files; leave out for template captions only."
    ),
) -> None:
    """Rewrite the captions of imported bandai, cmu-dance and cmu-cc clips from their import records (no
    motion is read), e.g. to add human-written captions. Re-encode tokens afterwards: they carry the captions."""
    from rich.console import Console

    from motionmillion.data.importers import recaption

    console = Console(soft_wrap=True)
    counts = recaption(dataset, text_pool)
    console.print(f"rewrote captions of {counts['clips']} clips ({counts['captions']} captions) in {dataset}")


@app.command("pack")
def pack_command(dataset: Path = typer.Argument(..., help="Dataset folder (MotionMillion layout).")) -> None:
    """Pack every clip into one memory-mapped frame array + index (DATASET/packed/), streaming."""
    from rich.console import Console

    from motionmillion.data.packed import PackedMotions, pack_dataset

    console = Console(soft_wrap=True)
    folder = pack_dataset(dataset)
    packed = PackedMotions(folder)
    console.print(f"packed {len(packed)} clips, {int(packed.lengths.sum())} frames -> {folder}")


@app.command("stats")
def stats_command(
    dataset: Path = typer.Argument(..., help="Dataset folder (MotionMillion layout)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of tables."),
    examples: int = typer.Option(5, "--examples", help="Caption examples to show."),
) -> None:
    """Counts per split, hours, length histogram and caption examples."""
    import json

    from motionmillion.data.stats import dataset_stats, print_stats

    stats = dataset_stats(dataset, examples=examples)
    if as_json:
        typer.echo(json.dumps(stats, indent=2))
    else:
        print_stats(stats)


if __name__ == "__main__":
    app()
