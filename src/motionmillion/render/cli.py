"""``motionmillion render`` and ``motionmillion export``: motion files -> video, BVH, joint arrays.

Accepted inputs: ``.npy`` holding (T, 272) de-normalised features or (T, 22, 3) joint positions in
metres (Y up), and ``.bvh`` files of any known rig (resampled to 30 fps, converted to metres).
Heavy libraries are imported inside the commands so ``motionmillion --help`` stays instant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import typer


class MotionFileError(ValueError):
    """A motion file that cannot be rendered or exported; the message names the file."""


@dataclass
class LoadedMotion:
    joints: np.ndarray  # (T, 22, 3) metres
    fps: float
    features: np.ndarray | None = None  # (T, 272) when the input had (or implies) them


def load_motion_file(
    path: Path, fps: float | None = None, rig: str | None = None, source_fps: float | None = None
) -> LoadedMotion:
    """Read a .npy (features or joints) or .bvh file; raise :class:`MotionFileError` naming the file."""
    from motionmillion.motion import FEATURE_DIM, NUM_JOINTS, decode_joints, validate_features
    from motionmillion.motion.bvh import bvh_to_features
    from motionmillion.motion.skeleton import FPS

    path = Path(path)
    if not path.is_file():
        raise MotionFileError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".bvh":
        # Going through the features puts BVH input in the same canonical frame as everything else.
        features = bvh_to_features(path, rig=rig, source_fps=source_fps)
        return LoadedMotion(decode_joints(features), FPS, features)
    if suffix != ".npy":
        raise MotionFileError(f"{path}: unsupported motion file (use .npy with (T, 272) or (T, 22, 3), or .bvh)")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise MotionFileError(f"{path}: not a readable .npy file ({err})") from err
    fps = FPS if fps is None else fps
    if array.ndim == 2 and array.shape[1] == FEATURE_DIM:
        features = validate_features(array.astype(np.float64), path)
        return LoadedMotion(decode_joints(features), fps, features)
    if array.ndim == 3 and array.shape[1:] == (NUM_JOINTS, 3):
        if len(array) == 0:
            raise MotionFileError(f"{path}: the motion has zero frames")
        if not np.isfinite(array).all():
            raise MotionFileError(f"{path}: joints contain NaN/infinite values")
        return LoadedMotion(array.astype(np.float64), fps)
    raise MotionFileError(
        f"{path}: expected (T, {FEATURE_DIM}) features or (T, {NUM_JOINTS}, 3) joints, got shape {array.shape}"
    )


def _fail(err: Exception) -> typer.Exit:
    from rich.console import Console

    Console(stderr=True).print(f"[bold red]error:[/] {err}", highlight=False)
    return typer.Exit(code=1)


def render_command(
    motion: Path = typer.Argument(..., help="Motion file: .npy (T,272 features or T,22,3 joints) or .bvh."),
    output: Path = typer.Option(..., "-o", "--output", help="Video to write: .mp4 or .gif."),
    fps: float | None = typer.Option(None, help="Frame rate of a .npy input (default 30). BVH is resampled to 30."),
    title: str = typer.Option("", help="Caption drawn above the figure."),
    size: int = typer.Option(480, help="Video width and height in pixels."),
    rig: str | None = typer.Option(None, help="Rig of a .bvh input (bandai, cmu-daz, smpl); default: detect."),
    source_fps: float | None = typer.Option(None, help="True frame rate of a .bvh input, overriding its header."),
) -> None:
    """Render a motion as a skeleton video played at the motion's real speed."""
    from motionmillion.motion.bvh import BVHError
    from motionmillion.motion.representation import InvalidMotionError
    from motionmillion.render import render_motion

    try:
        loaded = load_motion_file(motion, fps=fps, rig=rig, source_fps=source_fps)
        render_motion(loaded.joints, output, fps=loaded.fps, title=title, size=size)
    except (MotionFileError, BVHError, InvalidMotionError, ValueError) as err:
        raise _fail(err) from None
    typer.echo(f"wrote {output} ({len(loaded.joints)} frames at {loaded.fps:g} fps)")


def export_command(
    motion: Path = typer.Argument(..., help="Motion file: .npy (T,272 features or T,22,3 joints) or .bvh."),
    bvh: Path | None = typer.Option(None, "--bvh", help="Write a BVH with SMPL joint names."),
    joints: Path | None = typer.Option(None, "--joints", help="Write joint positions (T,22,3) as .npy."),
    features: Path | None = typer.Option(None, "--features", help="Write the (T,272) features as .npy."),
    fps: float | None = typer.Option(None, help="Frame rate of a .npy input (default 30)."),
    unit_scale: float = typer.Option(1.0, help="BVH file units per metre (100 writes centimetres)."),
    rig: str | None = typer.Option(None, help="Rig of a .bvh input (bandai, cmu-daz, smpl); default: detect."),
    source_fps: float | None = typer.Option(None, help="True frame rate of a .bvh input, overriding its header."),
) -> None:
    """Convert a motion to BVH, joint positions and/or 272 features."""
    from motionmillion.motion import encode_272, rotations_from_positions
    from motionmillion.motion.bvh import BVHError, write_bvh
    from motionmillion.motion.representation import InvalidMotionError
    from motionmillion.utils.io import atomic_save_npy

    if bvh is None and joints is None and features is None:
        raise typer.BadParameter("give at least one of --bvh, --joints, --features")
    try:
        loaded = load_motion_file(motion, fps=fps, rig=rig, source_fps=source_fps)
        feats = loaded.features
        if feats is None and (bvh is not None or features is not None):
            # Joint positions only: rotations from positions, then the representation (canonicalised).
            feats = encode_272(loaded.joints, rotations_from_positions(loaded.joints))
        if bvh is not None:
            write_bvh(bvh, feats, fps=loaded.fps, unit_scale=unit_scale)
            typer.echo(f"wrote {bvh}")
        if joints is not None:
            atomic_save_npy(joints, loaded.joints.astype(np.float32))
            typer.echo(f"wrote {joints}")
        if features is not None:
            atomic_save_npy(features, feats.astype(np.float32))
            typer.echo(f"wrote {features}")
    except (MotionFileError, BVHError, InvalidMotionError, ValueError) as err:
        raise _fail(err) from None
