"""Foot contact from joint positions: floor detection, per-joint contact flags, contact runs, metrics.

Shared by the clean-up (``motionmillion.postprocess``), the physical metrics
(``motionmillion.evaluation.physical``) and the benchmarks, so it lives with the other kinematics.

:func:`contact_transitions` is the plain test (below a fixed height at frames t and t+1 and slower
than a speed) that the metrics use. :func:`foot_contacts` adapts it to any motion: a foot joint (ankle or toe base) is in contact when it is close to the floor *and* slow. Heights are
measured from the detected floor (not y = 0, so generated motions that float or sink still work),
relative to the joint's own resting height (the ankle joint sits higher than the toe joint), and
the flags are cleaned with a median filter so one noisy frame neither starts nor breaks a contact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from motionmillion.motion.skeleton import FOOT_JOINTS, FPS, LEFT_FOOT_JOINTS, NUM_JOINTS, RIGHT_FOOT_JOINTS

# Column order of every (T, 4) contact array: left ankle, left toe, right ankle, right toe.
CONTACT_JOINTS: tuple[int, ...] = LEFT_FOOT_JOINTS + RIGHT_FOOT_JOINTS
CONTACT_NAMES: tuple[str, ...] = ("left_ankle", "left_toe", "right_ankle", "right_toe")

# Contact height per foot joint (ankle, toe, ankle, toe order as FOOT_JOINTS). Measured on Bandai
# walks (floor = lowest joint of the clip): a flat foot has the ankle at 7.5-8 cm and the toe joint at
# 0-1 cm, so 9 cm / 3 cm catch stance phases but not the swinging foot.
DEFAULT_CONTACT_HEIGHTS = (0.09, 0.03, 0.09, 0.03)
# A foot joint moving faster than this is swinging, not planted, even if it is close to the floor.
DEFAULT_CONTACT_MAX_SPEED = 1.0  # m/s


@dataclass(frozen=True)
class ContactConfig:
    # A joint may sit this far above its resting height and still touch the floor (metres).
    height_margin: float = 0.05
    # Resting height of each joint above the floor is estimated per motion, but capped: a joint that
    # never gets lower than this (ankle, toe) is not resting on the floor (metres).
    max_rest_height: tuple[float, float] = (0.15, 0.08)  # (ankle, toe)
    # Sliding feet must still count as "in contact" (that is what we fix), so this only rules out
    # swinging feet (m/s).
    max_speed: float = DEFAULT_CONTACT_MAX_SPEED
    # Odd number of frames of the median filter over the contact flags (1 disables it).
    median_window: int = 5
    # Floor estimate: mean of this percentile band of the per-frame lowest foot height.
    floor_percentiles: tuple[float, float] = (10.0, 30.0)
    # A "floor" this far above the lowest joint is not one the feet stand on (swimming, lying).
    max_floor_gap: float = 0.5


DEFAULT_CONTACT = ContactConfig()


def check_joints(joints: np.ndarray, what: str = "joints") -> np.ndarray:
    """``joints`` as a float64 (T, 22, 3) array, or a ValueError that starts with ``what``."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"{what} must have shape (T, {NUM_JOINTS}, 3), got {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError(f"{what} contain NaN or infinite values")
    return joints


def foot_speeds(joints: np.ndarray, fps: float) -> np.ndarray:
    """Horizontal (x, z) speed in m/s of the 4 foot joints between consecutive frames, shape (T-1, 4)."""
    feet = check_joints(joints)[:, list(FOOT_JOINTS)][..., [0, 2]]
    return np.linalg.norm(np.diff(feet, axis=0), axis=-1) * fps


def contact_transitions(
    joints: np.ndarray,
    fps: float,
    contact_heights: tuple[float, ...] = DEFAULT_CONTACT_HEIGHTS,
    contact_max_speed: float | None = DEFAULT_CONTACT_MAX_SPEED,
    floor_height: float = 0.0,
) -> np.ndarray:
    """Contact flags (T-1, 4) for the transitions t -> t+1 of (l_ankle, l_toe, r_ankle, r_toe).

    A foot joint is in contact when it is below its contact height at both frames t and t+1 and,
    if ``contact_max_speed`` is not None, moves horizontally slower than that speed.
    """
    joints = check_joints(joints)
    heights = joints[:, list(FOOT_JOINTS), 1] - floor_height
    low = heights < np.asarray(contact_heights)[None]
    contact = low[:-1] & low[1:]
    if contact_max_speed is not None:
        contact &= foot_speeds(joints, fps) < contact_max_speed
    return contact


def detect_floor(joints: np.ndarray, config: ContactConfig = DEFAULT_CONTACT) -> float:
    """Height (y, metres) of the floor the feet stand on.

    Mean of a low percentile band of the per-frame lowest foot joint, robust to a few frames where
    a foot dips through the floor and to airborne phases. If that level is far above the lowest
    joint of the motion (the body lies or swims and the feet never touch), the lowest joint is the
    floor instead.
    """
    joints = check_joints(joints)
    lowest_foot = joints[:, FOOT_JOINTS, 1].min(axis=1)
    lo, hi = np.percentile(lowest_foot, config.floor_percentiles)
    band = lowest_foot[(lowest_foot >= lo) & (lowest_foot <= hi)]
    floor = float(band.mean()) if band.size else float(np.median(lowest_foot))
    ground = float(joints[..., 1].min())
    if floor - ground > config.max_floor_gap:
        return ground
    return floor


def foot_contacts(joints: np.ndarray, fps: float = FPS, config: ContactConfig = DEFAULT_CONTACT) -> np.ndarray:
    """Contact flags (T, 4) bool per frame for left ankle, left toe, right ankle, right toe.

    ``joints`` are world positions (T, 22, 3) in metres, Y up (e.g. ``decode_joints(features)``).
    The height/speed test is :func:`contact_transitions`; here it gets the detected floor and
    per-joint heights (resting height + margin), and its transition flags become per-frame flags,
    median filtered.
    """
    from scipy.ndimage import median_filter
    joints = check_joints(joints)
    if len(joints) < 2:
        return np.zeros((len(joints), len(CONTACT_JOINTS)), dtype=bool)
    floor = detect_floor(joints, config)
    heights = joints[:, CONTACT_JOINTS, 1] - floor  # (T, 4)
    caps = np.array(config.max_rest_height * 2)  # ankle, toe, ankle, toe
    rest = np.minimum(np.maximum(np.percentile(heights, 5, axis=0), 0.0), caps)
    transitions = contact_transitions(
        joints, fps, contact_heights=tuple(rest + config.height_margin), contact_max_speed=config.max_speed, floor_height=floor
    )  # (T-1, 4): frames t and t+1 both low and slow
    contacts = np.zeros(heights.shape, dtype=bool)
    contacts[:-1] |= transitions
    contacts[1:] |= transitions
    if config.median_window > 1 and len(contacts) >= config.median_window:
        contacts = median_filter(contacts.astype(np.uint8), size=(config.median_window, 1), mode="nearest") > 0
    return contacts


def contact_runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous True runs of a (T,) bool array as (start, end) with end exclusive."""
    flags = np.asarray(flags, dtype=bool)
    padded = np.concatenate([[False], flags, [False]])
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(s), int(e)) for s, e in zip(edges[::2], edges[1::2], strict=True)]


def contact_metrics(joints: np.ndarray, fps: float = FPS, config: ContactConfig = DEFAULT_CONTACT) -> dict[str, float]:
    """Summary of a motion's foot contacts: floor height, fraction of frames in contact, runs.

    For the sliding speed of feet in contact use ``motionmillion.evaluation.physical.foot_skating``.
    """
    joints = check_joints(joints)
    contacts = foot_contacts(joints, fps, config)
    metrics: dict[str, float] = {"floor_height": detect_floor(joints, config), "num_frames": float(len(joints))}
    for name, flags in zip(CONTACT_NAMES, contacts.T, strict=True):
        metrics[f"{name}_contact_fraction"] = float(flags.mean())
        metrics[f"{name}_contact_runs"] = float(len(contact_runs(flags)))
    left = contacts[:, 0] | contacts[:, 1]
    right = contacts[:, 2] | contacts[:, 3]
    metrics["any_foot_contact_fraction"] = float((left | right).mean())
    metrics["no_foot_contact_fraction"] = float((~(left | right)).mean())
    return metrics
