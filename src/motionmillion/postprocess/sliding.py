"""Foot-sliding removal on 272 features: pin contacts, ease around them, solve the legs, re-encode.

1. Decode rotations and root, fit the motion's own skeleton (bone lengths), turn the rotations so
   the bones point where the decoded joints are (generated motions disagree by ~1 cm) and run
   forward kinematics, so every position we touch is consistent with the rotations.
2. Detect contact runs per foot joint (ankle, toe) and pin each run to its mean position; the
   frames around a run move by the pin offset faded out with a cubic ease over ``blend_frames``.
3. Analytic two-bone IK per leg (hip-knee-ankle) plus a foot re-aim (ankle->toe) changes only the
   hip, knee and ankle rotations: pelvis, spine, arms and head are untouched.
4. New joints = forward kinematics of the new rotations; the features are re-encoded with
   ``encode_272(canonical=False)`` so positions, velocities and rotations agree and the motion
   stays where its input was (no re-canonicalising turn or shift).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from motionmillion.motion import (
    align_rotations_to_positions,
    decode_joints,
    decode_rotations,
    encode_272,
    fit_offsets,
    forward_kinematics,
    local_to_global,
    validate_features,
)
from motionmillion.motion.representation import POSITIONS
from motionmillion.motion.rotations import axis_angle_to_matrix
from motionmillion.motion.skeleton import FPS, NUM_JOINTS
from motionmillion.motion.contact import CONTACT_JOINTS, DEFAULT_CONTACT, ContactConfig, contact_runs, foot_contacts
from motionmillion.postprocess.ik import LEFT_LEG, RIGHT_LEG, globals_to_locals, solve_leg

# Fewer frames than this carry no usable contact information (velocities need neighbours).
MIN_FRAMES = 5


class PostprocessWarning(UserWarning):
    """A motion was returned unchanged (too short, no foot contact) or a step was skipped."""


@dataclass(frozen=True)
class SlidingConfig:
    contact: ContactConfig = field(default_factory=ContactConfig)
    # Frames on each side of a contact run over which the pin offset fades out (cubic ease).
    blend_frames: int = 6
    # Pin contact heights too (to the run's mean height), not only the horizontal position.
    pin_height: bool = True


DEFAULT_SLIDING = SlidingConfig()


def consistent_skeleton(features: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rotations (T, 22, 3, 3), root positions (T, 3) and a rigid skeleton (22, 3) for a 272 motion,
    with forward kinematics as close to its decoded joints as one rigid skeleton allows.

    A generated motion's rotations and positions disagree by about a centimetre; its rotations are
    turned (twist kept) so every bone points where the decoded joints say, and the bone lengths are
    their mean. Imported motions are consistent already and come back as they are.
    """
    rotations, root = decode_rotations(features)
    joints = decode_joints(features)
    rotations = align_rotations_to_positions(rotations, joints, fit_offsets(joints, rotations))
    return rotations, root, fit_offsets(joints, rotations)


def encode_consistent(
    rotations: np.ndarray, root_positions: np.ndarray, offsets: np.ndarray, canonical: bool = False
) -> np.ndarray:
    """272 features whose positions are the forward kinematics of ``rotations``.

    By default the motion keeps its world placement (``encode_272(..., canonical=False)``), so a
    cleaned motion is compared with, and exported like, its input without any whole-body shift or turn.
    """
    return encode_272(forward_kinematics(rotations, root_positions, offsets), rotations, canonical=canonical)


def _ease(x: np.ndarray) -> np.ndarray:
    """Cubic ease 1 -> 0 on [0, 1]: 2x^3 - 3x^2 + 1 (zero slope at both ends)."""
    x = np.clip(x, 0.0, 1.0)
    return 2.0 * x**3 - 3.0 * x**2 + 1.0


def pin_offsets(
    positions: np.ndarray, contact: np.ndarray, blend_frames: int, pin_height: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame offsets (T, 3) that pin each contact run of one joint, and their weights (T,).

    Inside a run the offset moves the joint to the run's mean position (weight 1). Outside, the
    offset of the nearest run fades out over ``blend_frames`` frames with a cubic ease; a gap too
    short for two fades eases from one run's offset straight into the next one's.
    """
    num_frames = len(positions)
    offsets = np.zeros((num_frames, 3))
    weights = np.zeros(num_frames)
    runs = contact_runs(contact)
    for start, end in runs:
        offsets[start:end] = positions[start:end].mean(axis=0) - positions[start:end]
        weights[start:end] = 1.0
    if not pin_height:
        offsets[:, 1] = 0.0
    if blend_frames <= 0 or not runs:
        return offsets, weights
    scale = blend_frames + 1.0
    # Gaps as (last pinned frame before or None, first pinned frame after or None).
    gaps = [(None, runs[0][0])] + [(a_end - 1, b_start) for (_, a_end), (b_start, _) in zip(runs, runs[1:])]
    gaps.append((runs[-1][1] - 1, None))
    for left, right in gaps:
        lo = 0 if left is None else left + 1
        hi = num_frames if right is None else right
        if hi <= lo:
            continue
        t = np.arange(lo, hi)
        if left is not None and right is not None and right - left <= 2 * scale:
            w_left = _ease((t - left) / (right - left))
            offsets[lo:hi] = w_left[:, None] * offsets[left] + (1.0 - w_left)[:, None] * offsets[right]
            weights[lo:hi] = np.maximum(w_left, 1.0 - w_left)
            continue
        if left is not None:
            w = _ease((t - left) / scale)
            offsets[lo:hi] += w[:, None] * offsets[left]
            weights[lo:hi] = np.maximum(weights[lo:hi], w)
        if right is not None:
            w = _ease((right - t) / scale)
            offsets[lo:hi] += w[:, None] * offsets[right]
            weights[lo:hi] = np.maximum(weights[lo:hi], w)
    return offsets, weights


def fix_foot_sliding(
    features: np.ndarray, fps: float = FPS, config: SlidingConfig = DEFAULT_SLIDING, source: str = "motion"
) -> np.ndarray:
    """Remove foot sliding from de-normalised 272 features (T, 272); returns new features.

    Motions shorter than ``MIN_FRAMES`` or without any foot contact (swimming, jumping, lying) come
    back unchanged with a :class:`PostprocessWarning`; NaN or a wrong shape raises
    ``InvalidMotionError`` naming ``source``.
    """
    features = validate_features(features, source)
    if len(features) < MIN_FRAMES:
        warnings.warn(f"{source}: {len(features)} frames (< {MIN_FRAMES}); foot sliding left as is", PostprocessWarning, stacklevel=2)
        return features.copy()
    rotations, root, offsets = consistent_skeleton(features)
    global_rot = local_to_global(rotations)
    joints = forward_kinematics(rotations, root, offsets)
    contacts = foot_contacts(joints, fps, config.contact)
    if not contacts.any():
        warnings.warn(f"{source}: no foot contact detected; foot sliding left as is", PostprocessWarning, stacklevel=2)
        return features.copy()

    # Pin offsets per contact joint (ankle, toe of each side).
    pinned = {
        joint: pin_offsets(joints[:, joint], contacts[:, column], config.blend_frames, config.pin_height)
        for column, joint in enumerate(CONTACT_JOINTS)
    }
    new_rotations = rotations.copy()
    for leg in (LEFT_LEG, RIGHT_LEG):
        _, _, ankle, toe = leg
        (ankle_offset, ankle_weight), (toe_offset, toe_weight) = pinned[ankle], pinned[toe]
        # A free joint follows its pinned partner, so the foot moves as one piece (heel lifting
        # while the toe stays planted pivots the foot about the toe).
        ankle_move = ankle_offset + (1.0 - ankle_weight)[:, None] * toe_offset
        toe_move = toe_offset + (1.0 - toe_weight)[:, None] * ankle_offset
        active = np.flatnonzero((np.abs(ankle_move) > 1e-9).any(axis=1) | (np.abs(toe_move) > 1e-9).any(axis=1))
        if active.size == 0:
            continue
        new_globals = solve_leg(
            global_rot[active], joints[active], leg, joints[active, ankle] + ankle_move[active], joints[active, toe] + toe_move[active]
        )
        new_rotations[active] = globals_to_locals(global_rot[active], new_globals, new_rotations[active])
    return encode_consistent(new_rotations, root, offsets).astype(features.dtype, copy=False)


def inject_sliding(features: np.ndarray, amplitude_deg: float = 4.0, hz: float = 0.4, seed: int = 0) -> np.ndarray:
    """Add foot sliding to a clean motion (for tests and benchmarks): a slow sway of both hips.

    Each hip's rotation gets a sinusoidal pitch and roll (``amplitude_deg``, ``hz``, random phases),
    so planted feet slide by ~0.1-0.2 m/s while the pelvis, spine, arms and head do not move.
    """
    features = validate_features(features)
    rng = np.random.default_rng(seed)
    rotations, root, offsets = consistent_skeleton(features)
    t = np.arange(len(features)) / FPS
    for hip in (LEFT_LEG[0], RIGHT_LEG[0]):
        phase = rng.uniform(0.0, 2.0 * np.pi, size=2)
        angles = np.radians(amplitude_deg) * np.sin(2.0 * np.pi * hz * t[:, None] + phase)  # (T, 2)
        axis_angle = np.stack([angles[:, 0], np.zeros(len(t)), angles[:, 1]], axis=-1)  # pitch (x), roll (z)
        rotations[:, hip] = axis_angle_to_matrix(axis_angle) @ rotations[:, hip]
    return encode_consistent(rotations, root, offsets)


def leg_free_joints() -> list[int]:
    """Joints the sliding fix never moves (everything but hips, knees, ankles and toes)."""
    legs = set(LEFT_LEG + RIGHT_LEG)
    return [j for j in range(NUM_JOINTS) if j not in legs]
