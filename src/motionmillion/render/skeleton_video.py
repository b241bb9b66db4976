"""Skeleton video of a motion: matplotlib 3D stick figure -> MP4 (imageio-ffmpeg) or GIF.

One figure is built once; every frame only moves the existing artists (chains, trajectory, camera
limits) and grabs the canvas, which keeps a 300-frame clip to seconds. Y is up (matplotlib's
``vertical_axis="y"``, a proper rotation, so the body's left stays on its left); the floor is the
motion's lowest point; the camera follows the root.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from motionmillion.motion.skeleton import KINEMATIC_CHAINS, NUM_JOINTS

# Colours per KINEMATIC_CHAINS entry: right side warm, left side cool, spine dark.
CHAIN_COLOURS = ("#d62728", "#1f77b4", "#333333", "#ff7f0e", "#17becf")
TRAJECTORY_COLOUR = "#2a6fdb"
FLOOR_COLOUR = "#9a9a9a"
GRID_STEP = 0.5  # metres


def _check_joints(joints: np.ndarray, path: str | Path) -> np.ndarray:
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or len(joints) == 0:
        raise ValueError(f"{path}: render needs joints of shape (T, {NUM_JOINTS}, 3) with T >= 1, got {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError(f"{path}: joints contain NaN/infinite values")
    return joints


MIN_SIZE, MAX_SIZE = 64, 2048  # pixels; smaller is unreadable, larger costs GBs of frames in memory


def render_motion(
    joints: np.ndarray,
    path: str | Path,
    fps: float = 30.0,
    title: str = "",
    size: int = 480,
    radius: float = 1.0,
    elev: float = 20.0,
    azim: float = 30.0,
    trajectory: bool = True,
) -> Path:
    """Render joints (T, 22, 3) in metres (Y up) to ``path`` (.mp4 or .gif), played at ``fps``.

    Args:
        size: output width and height in pixels (rounded down to a multiple of 16 for H.264).
        radius: half-width of the view around the root, metres.
        elev, azim: camera elevation and azimuth in degrees; azim 0 looks at the front of a
            figure facing +Z (canonicalised motions start so), other values turn the camera about Y.
        trajectory: draw the root's ground track so far.
    """
    import warnings

    import imageio.v2 as imageio

    # A bare Figure on an Agg canvas: no pyplot, so no global backend state and nothing to close.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from mpl_toolkits.mplot3d.art3d import Line3DCollection  # also registers the "3d" projection

    from motionmillion.utils.io import atomic_path

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".mp4", ".gif"):
        raise ValueError(f"{path}: output must end in .mp4 or .gif")
    if not fps > 0:
        raise ValueError(f"{path}: fps must be positive, got {fps}")
    joints = _check_joints(joints, path).copy()
    joints[..., 1] -= joints[..., 1].min()  # floor at the lowest point of the motion
    root = joints[:, 0]
    if not MIN_SIZE <= size <= MAX_SIZE:
        raise ValueError(f"{path}: size must be {MIN_SIZE}-{MAX_SIZE} pixels, got {size}")
    size = int(size) // 16 * 16
    dpi = 100

    fig = Figure(figsize=(size / dpi, size / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 0.94 if title else 1.0), projection="3d")
    ax.set_axis_off()
    ax.set_box_aspect((1, 1, 1), zoom=1.25)
    # With vertical_axis="y", matplotlib's azim 0 puts the camera on +Z looking at -Z (checked
    # on rendered frames: a figure facing +Z shows its left hand on the image's right).
    ax.view_init(elev=elev, azim=azim, vertical_axis="y")
    ax.set_ylim(-0.15, 2 * radius - 0.15)
    if title:
        fig.text(0.5, 0.985, _wrap(title, width=int(size / 8)), ha="center", va="top", fontsize=9)

    # Floor grid inside the view square only (matplotlib does not clip 3D lines); it is rebuilt
    # per frame at fixed world positions, so it scrolls as the camera follows the root.
    floor = Line3DCollection(
        _grid(root[0, 0], root[0, 2], radius, GRID_STEP), colors=FLOOR_COLOUR, linewidths=0.6, alpha=0.7
    )
    ax.add_collection3d(floor, autolim=False)

    (track,) = ax.plot([], [], [], color=TRAJECTORY_COLOUR, linewidth=1.5)
    lines = [
        ax.plot([], [], [], color=colour, linewidth=3.0 if i in (0, 1, 2) else 2.5, solid_capstyle="round")[0]
        for i, colour in enumerate(CHAIN_COLOURS)
    ]

    with atomic_path(path) as tmp:
        if suffix == ".mp4":
            writer = imageio.get_writer(
                tmp, format="FFMPEG", fps=fps, codec="libx264", quality=7, pixelformat="yuv420p",
                macro_block_size=16, ffmpeg_params=["-preset", "veryfast"],
            )
        else:
            writer = imageio.get_writer(tmp, format="GIF", mode="I", duration=1000.0 / fps, loop=0)
        try:
            with warnings.catch_warnings():
                # A title in a script the font lacks (emoji, CJK) draws boxes; that is no reason to warn per frame.
                warnings.filterwarnings("ignore", message="Glyph .* missing from", category=UserWarning)
                for t in range(len(joints)):
                    for line, chain in zip(lines, KINEMATIC_CHAINS):
                        pts = joints[t, list(chain)]
                        line.set_data_3d(pts[:, 0], pts[:, 1], pts[:, 2])
                    x0, z0 = root[t, 0], root[t, 2]
                    if trajectory:  # the ground track so far, inside the view square
                        past = root[: t + 1]
                        past = past[(np.abs(past[:, 0] - x0) <= radius) & (np.abs(past[:, 2] - z0) <= radius)]
                        track.set_data_3d(past[:, 0], np.zeros(len(past)), past[:, 2])
                    ax.set_xlim(x0 - radius, x0 + radius)
                    ax.set_zlim(z0 - radius, z0 + radius)
                    floor.set_segments(_grid(x0, z0, radius, GRID_STEP))
                    fig.canvas.draw()
                    frame = np.asarray(fig.canvas.buffer_rgba())[..., :3]
                    writer.append_data(np.ascontiguousarray(frame))
        finally:
            writer.close()
    return path


def _grid(x0: float, z0: float, radius: float, step: float) -> list:
    """Floor lines at multiples of ``step`` inside the square of half-width ``radius`` around (x0, z0)."""
    xs = np.arange(np.ceil((x0 - radius) / step), np.floor((x0 + radius) / step) + 1) * step
    zs = np.arange(np.ceil((z0 - radius) / step), np.floor((z0 + radius) / step) + 1) * step
    lo_x, hi_x, lo_z, hi_z = x0 - radius, x0 + radius, z0 - radius, z0 + radius
    return [[(x, 0.0, lo_z), (x, 0.0, hi_z)] for x in xs] + [[(lo_x, 0.0, z), (hi_x, 0.0, z)] for z in zs]


def _wrap(text: str, width: int) -> str:
    import textwrap

    return "\n".join(textwrap.wrap(text, width=max(20, width))[:3])
