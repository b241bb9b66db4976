"""``motionmillion render``: a motion file -> skeleton video.

Reads every motion file the project knows through :meth:`motionmillion.motion.Motion.load`.
Heavy libraries are imported inside the command so ``motionmillion --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path

import typer


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
    from motionmillion.motion import Motion
    from motionmillion.render import render_motion

    loaded = Motion.load(motion, fps=fps, rig=rig, source_fps=source_fps)
    render_motion(loaded.joints, output, fps=loaded.fps, title=title, size=size)
    typer.echo(f"wrote {output} ({loaded.num_frames} frames at {loaded.fps:g} fps)")
