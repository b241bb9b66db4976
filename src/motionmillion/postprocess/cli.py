"""``motionmillion postprocess IN --out OUT``: clean up 272 ``.npy`` and ``.bvh`` motions.

IN is a file or a folder (searched recursively for ``.npy`` and ``.bvh``); OUT is a file (single
input, its suffix picks the output format: ``.npy`` or ``.bvh``) or a folder that mirrors IN's
sub-folders, each file keeping its format. Bad files are skipped and listed at the end (exit code 1).
"""

from __future__ import annotations

from pathlib import Path

import typer

SUFFIXES = (".npy", ".bvh")


def _plan(input_path: Path, out: Path) -> list[tuple[Path, Path]]:
    """(input file, output file) pairs."""
    if input_path.is_file():
        if input_path.suffix.lower() not in SUFFIXES:
            raise typer.BadParameter(f"{input_path}: not a .npy or .bvh file", param_hint="IN")
        if out.suffix.lower() in SUFFIXES:
            return [(input_path, out)]
        return [(input_path, out / input_path.name)]
    if input_path.is_dir():
        if out.suffix.lower() in SUFFIXES:
            raise typer.BadParameter(f"{out}: IN is a folder, so OUT must be a folder", param_hint="--out")
        files = sorted(p for p in input_path.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        if not files:
            raise typer.BadParameter(f"{input_path}: no .npy or .bvh files found", param_hint="IN")
        return [(p, out / p.relative_to(input_path)) for p in files]
    raise typer.BadParameter(f"{input_path}: no such file or folder", param_hint="IN")


def _load(path: Path, fps: float, bvh_fps: float | None):
    """(motion, dtype to write it back in): the project's one motion reader, keeping a .npy's precision."""
    import numpy as np

    from motionmillion.motion import Motion

    motion = Motion.load(path, fps=fps, source_fps=bvh_fps)
    dtype = np.load(path, mmap_mode="r").dtype if path.suffix.lower() == ".npy" else np.float32
    return motion, dtype


def _save(path: Path, features, fps: float, like_dtype) -> None:
    from motionmillion.motion.bvh import write_bvh
    from motionmillion.utils.io import atomic_save_npy

    if path.suffix.lower() == ".bvh":
        write_bvh(path, features, fps=fps)
    else:
        atomic_save_npy(path, features.astype(like_dtype, copy=False))


def postprocess_command(
    input_path: Path = typer.Argument(..., metavar="IN", help="A .npy (T, 272) or .bvh file, or a folder of them."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file (.npy/.bvh) or folder."),
    window: int | None = typer.Option(
        None, "--window", "-w", help="Savitzky-Golay smoothing window in frames (odd, >= 5 for polyorder 2); off by default."
    ),
    polyorder: int = typer.Option(2, "--polyorder", help="Savitzky-Golay polynomial order."),
    no_feet: bool = typer.Option(False, "--no-feet", help="Do not remove foot sliding."),
    align_floor: bool = typer.Option(False, "--align-floor", help="Move the detected floor to y = 0."),
    blend_frames: int = typer.Option(6, "--blend-frames", help="Frames over which pinned feet ease back into the motion."),
    fps: float = typer.Option(30.0, "--fps", help="Frame rate of .npy inputs (272 motions are 30 fps)."),
    bvh_fps: float | None = typer.Option(None, "--bvh-fps", help="True frame rate of BVH inputs when the header is wrong."),
) -> None:
    """Remove foot sliding, smooth and floor-align motions (272 .npy or BVH), keeping them consistent."""
    import warnings

    import numpy as np
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from motionmillion.postprocess.pipeline import PostprocessConfig, postprocess_features
    from motionmillion.postprocess.sliding import PostprocessWarning, SlidingConfig
    from motionmillion.postprocess.smoothing import SmoothingWindowError

    console = Console(stderr=True)
    try:
        config = PostprocessConfig(
            fix_feet=not no_feet, window=window, polyorder=polyorder, align_floor=align_floor,
            sliding=SlidingConfig(blend_frames=blend_frames),
        )  # fmt: skip
    except SmoothingWindowError as err:
        raise typer.BadParameter(str(err), param_hint="--window") from None
    if blend_frames < 0:
        raise typer.BadParameter("must be >= 0", param_hint="--blend-frames")
    if not fps > 0:
        raise typer.BadParameter("must be positive", param_hint="--fps")
    plan = _plan(input_path, out)

    failed: list[tuple[Path, str]] = []
    notes: list[str] = []
    columns = (TextColumn("postprocess"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("files", total=len(plan))
        for source, target in plan:
            try:
                motion, dtype = _load(source, fps, bvh_fps)  # BVH inputs come resampled to 30 fps
                features, motion_fps = motion.features, motion.fps
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", PostprocessWarning)
                    cleaned = postprocess_features(np.asarray(features, dtype=np.float64), config, fps=motion_fps, source=str(source))
                notes.extend(str(w.message) for w in caught if issubclass(w.category, PostprocessWarning))
                _save(target, cleaned, motion_fps, dtype)
            except (ValueError, OSError) as err:
                failed.append((source, str(err)))
            progress.advance(task)

    for note in notes:
        console.print(f"[yellow]note:[/yellow] {note}")
    done = len(plan) - len(failed)
    console.print(f"{done}/{len(plan)} file(s) written under {out}")
    if failed:
        console.print(f"[red]{len(failed)} file(s) skipped:[/red]")
        for path, reason in failed:
            console.print(f"  {reason}" if str(path) in reason else f"  {path}: {reason}")
        raise typer.Exit(code=1)
