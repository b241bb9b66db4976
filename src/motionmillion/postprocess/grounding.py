"""Hovering: find stretches where a motion floats above the floor, and put them back on it.

A person stands on the floor unless they jump, and a jump is short: lifting the lowest foot 10 cm for
0.7 s takes a 0.6 m leap. A generated motion whose lowest foot stays above ``HOVER_HEIGHT`` for longer
than ``HOVER_SECONDS`` is hovering (the memorised bundled generator does it: a climbing take whose feet
never come below 0.64 m for "a person jumps"). :func:`ground_hovering` lowers each such stretch until the
lowest foot joint rests at its contact height, easing in and out around it, and never lowers a frame
further than its own lowest foot allows (so nothing goes through the floor and jumps elsewhere stay).
"""

from __future__ import annotations

import numpy as np

from motionmillion.motion.contact import CONTACT_JOINTS, DEFAULT_CONTACT_HEIGHTS
from motionmillion.motion.representation import POSITIONS, VELOCITIES, decode_joints, validate_features

HOVER_HEIGHT = 0.10  # metres: the lowest foot joint above this is off the floor
HOVER_SECONDS = 0.7  # longer off the floor than any jump of the training data
EASE_SECONDS = 0.3  # the lowering fades in before a stretch and out after it


def floor_gap(joints: np.ndarray) -> np.ndarray:
    """(T,) how far each frame's lowest foot joint is above its contact height (>= 0), metres."""
    heights = joints[:, list(CONTACT_JOINTS), 1] - np.asarray(DEFAULT_CONTACT_HEIGHTS)
    return np.clip(heights.min(axis=1), 0.0, None)


def hover_runs(joints: np.ndarray, fps: float, height: float = HOVER_HEIGHT, seconds: float = HOVER_SECONDS) -> list[tuple[int, int]]:
    """[start, end) frame ranges where the lowest foot joint stays above ``height`` for more than ``seconds``."""
    lowest = joints[:, list(CONTACT_JOINTS), 1].min(axis=1)
    above = np.concatenate([[False], lowest > height, [False]])
    edges = np.flatnonzero(above[1:] != above[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2]) if (b - a) / fps > seconds]


def ground_hovering(features: np.ndarray, fps: float, source: str = "motion") -> tuple[np.ndarray, list[dict]]:
    """The motion with its hovering stretches lowered onto the floor, and what was done: one entry per
    stretch (``start_frame``, ``end_frame``, ``seconds``, ``lowered_m``: the largest drop). A motion that
    does not hover comes back unchanged (the same array values) with an empty list."""
    features = validate_features(features, source)
    joints = decode_joints(features)
    runs = hover_runs(joints, fps)
    if not runs:
        return features, []
    gap = floor_gap(joints)
    frames = np.arange(len(features))
    ease = max(1, round(EASE_SECONDS * fps))
    weight = np.zeros(len(features))
    for start, end in runs:
        # 1 inside the stretch, a cosine ramp over `ease` frames on either side
        before = np.clip((frames - (start - ease)) / ease, 0.0, 1.0)
        after = np.clip(((end - 1 + ease) - frames) / ease, 0.0, 1.0)
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.minimum(before, after))
        weight = np.maximum(weight, ramp)
    # Smooth the gap over a fifth of a second so the lowering does not follow every step, but never drop
    # a frame below its own lowest foot.
    width = max(1, round(0.2 * fps)) | 1
    padded = np.pad(gap, width // 2, mode="edge")
    smooth = np.convolve(padded, np.ones(width) / width, mode="valid")
    drop = np.minimum(weight * smooth, gap)
    out = features.copy()
    out[:, POSITIONS.start + 1 : POSITIONS.stop : 3] -= drop[:, None]
    # Joint velocities are per-frame displacements (frame t - 1 to t): all joints fall by the drop's change.
    step = np.diff(drop, prepend=drop[0])
    out[:, VELOCITIES.start + 1 : VELOCITIES.stop : 3] -= step[:, None]
    report = [{"start_frame": start, "end_frame": end, "seconds": round((end - start) / fps, 2),
               "lowered_m": round(float(drop[start:end].max()), 3)} for start, end in runs]  # fmt: skip
    return out.astype(features.dtype, copy=False), report
