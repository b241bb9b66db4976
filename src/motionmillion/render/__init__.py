"""Skeleton video of a motion (matplotlib + imageio-ffmpeg)."""

from motionmillion.render.skeleton_video import render_motion

__all__ = ["render_motion"]
