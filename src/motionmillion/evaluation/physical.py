"""Physical plausibility metrics computed from joint positions only (no body model, no checkpoint).

All functions take world joints ``(T, 22, 3)`` in metres, Y up, with the floor at ``floor_height``
(``decode_joints`` of a canonicalised motion puts the floor at y = 0), and the frame rate.

- ``foot_contacts``: which foot joints (left ankle, left toe, right ankle, right toe) touch the floor
  (``motionmillion.motion.contact.contact_transitions``, shared with the clean-up).
- ``foot_skating``: mean horizontal speed (m/s) of foot joints while in contact. A planted foot
  should not move, so real mocap scores a few cm/s; sliding generators score much more.
- ``skating_ratio``: fraction of frames in which some foot in contact slides faster than
  ``slide_speed`` (the GMD-style ratio). Bandai mocap walks: foot_skating 0.08-0.13 m/s,
  skating_ratio about 0.05-0.1; standing/bowing about 0.
- ``ground_penetration``: mean depth (m) of the lowest joint below the floor.
- ``floating``: mean height (m) of the lowest foot joint above ``float_tolerance``.
- ``jitter``: mean joint jerk magnitude (m/s^3), third finite difference.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from motionmillion.motion.contact import (
    DEFAULT_CONTACT_HEIGHTS,
    DEFAULT_CONTACT_MAX_SPEED,
    check_joints,
    foot_speeds,
)
from motionmillion.motion.contact import contact_transitions as foot_contacts
from motionmillion.motion.skeleton import FOOT_JOINTS

DEFAULT_SLIDE_SPEED = 0.5  # m/s, "sliding" for skating_ratio (GMD: 2.5 cm per frame at 20 fps)
DEFAULT_FLOAT_TOLERANCE = 0.05  # m


def _check_joints(joints: np.ndarray, fps: float) -> np.ndarray:
    joints = check_joints(joints, "physical metrics: joints")
    if not fps > 0:
        raise ValueError(f"physical metrics: fps must be positive, got {fps}")
    return joints


def foot_skating(
    joints: np.ndarray,
    fps: float,
    contact_heights: tuple[float, ...] = DEFAULT_CONTACT_HEIGHTS,
    contact_max_speed: float | None = DEFAULT_CONTACT_MAX_SPEED,
    floor_height: float = 0.0,
) -> float:
    """Mean horizontal sliding speed (m/s) of foot joints while they are in contact with the floor.

    ``joints``: (T, 22, 3) world positions in metres, Y up, floor at ``floor_height``; ``fps``: frame
    rate. Contact is decided per foot joint (ankles 7/8, toes 10/11) by height and speed, see
    :func:`foot_contacts`. Returns 0.0 when no foot is ever in contact (e.g. a one-frame clip or
    a jump). Lower is better; a perfectly planted foot gives exactly 0.
    """
    joints = _check_joints(joints, fps)
    contact = foot_contacts(joints, fps, contact_heights, contact_max_speed, floor_height)
    if not contact.any():
        return 0.0
    return float(foot_speeds(joints, fps)[contact].mean())


def skating_ratio(
    joints: np.ndarray,
    fps: float,
    slide_speed: float = DEFAULT_SLIDE_SPEED,
    contact_heights: tuple[float, ...] = DEFAULT_CONTACT_HEIGHTS,
    contact_max_speed: float | None = DEFAULT_CONTACT_MAX_SPEED,
    floor_height: float = 0.0,
) -> float:
    """Fraction of frame transitions where at least one foot joint in contact slides faster than ``slide_speed``."""
    joints = _check_joints(joints, fps)
    contact = foot_contacts(joints, fps, contact_heights, contact_max_speed, floor_height)
    if len(contact) == 0:
        return 0.0
    sliding = contact & (foot_speeds(joints, fps) > slide_speed)
    return float(sliding.any(axis=1).mean())


def ground_penetration(joints: np.ndarray, floor_height: float = 0.0) -> float:
    """Mean over frames of how far (m) the lowest joint is below the floor (0 when above it)."""
    joints = _check_joints(joints, 1.0)
    lowest = joints[..., 1].min(axis=1) - floor_height
    return float(np.maximum(-lowest, 0.0).mean())


def floating(joints: np.ndarray, floor_height: float = 0.0, tolerance: float = DEFAULT_FLOAT_TOLERANCE) -> float:
    """Mean over frames of how far (m) the lowest foot joint is above ``floor + tolerance`` (0 when below)."""
    joints = _check_joints(joints, 1.0)
    lowest_foot = joints[:, list(FOOT_JOINTS), 1].min(axis=1) - floor_height
    return float(np.maximum(lowest_foot - tolerance, 0.0).mean())


def jitter(joints: np.ndarray, fps: float) -> float:
    """Mean jerk magnitude (m/s^3) over all joints and frames: |third finite difference| * fps^3.

    Returns 0.0 for clips shorter than 4 frames (no jerk is defined).
    """
    joints = _check_joints(joints, fps)
    if len(joints) < 4:
        return 0.0
    jerk = np.diff(joints, n=3, axis=0) * fps**3
    return float(np.linalg.norm(jerk, axis=-1).mean())


@dataclass
class PhysicalMetrics:
    foot_skating: float  # m/s
    skating_ratio: float  # fraction of frames
    ground_penetration: float  # m
    floating: float  # m
    jitter: float  # m/s^3

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def physical_metrics(joints: np.ndarray, fps: float, floor_height: float = 0.0) -> PhysicalMetrics:
    """All physical metrics of one motion with the default thresholds."""
    return PhysicalMetrics(
        foot_skating=foot_skating(joints, fps, floor_height=floor_height),
        skating_ratio=skating_ratio(joints, fps, floor_height=floor_height),
        ground_penetration=ground_penetration(joints, floor_height),
        floating=floating(joints, floor_height),
        jitter=jitter(joints, fps),
    )
