"""The 272-dim MotionMillion motion representation: forward (:func:`encode_272`) and inverse.

Layout per frame (J = 22, 30 fps, Y up, metres, rates per frame)::

    [0:2]     root xz velocity, in the heading-free frame of the previous frame (frame 0: zero)
    [2:8]     heading change (yaw delta) as 6D (frame 0: identity)
    [8:74]    joint positions: pelvis at x = z = 0, absolute height, heading removed
    [74:140]  frame difference of [8:74] (frame 0: zero)
    [140:272] 6D rotations: joint 0 root orientation without heading, 1..21 local rotations

This module is the single implementation of the representation; everything else calls it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from motionmillion.motion.rotations import heading_angle, matrix_to_6d, sixd_to_matrix, yaw_matrix
from motionmillion.motion.skeleton import MIRROR_PERMUTATION, NUM_JOINTS

FEATURE_DIM = 8 + 3 * NUM_JOINTS + 3 * NUM_JOINTS + 6 * NUM_JOINTS  # 272
ROOT_VEL = slice(0, 2)
HEADING = slice(2, 8)
POSITIONS = slice(8, 8 + 3 * NUM_JOINTS)  # 8:74
VELOCITIES = slice(74, 74 + 3 * NUM_JOINTS)  # 74:140
ROTATIONS = slice(140, 140 + 6 * NUM_JOINTS)  # 140:272
# The groups whose std is averaged when normalising (reference cal_mean_std).
FEATURE_GROUPS = (ROOT_VEL, HEADING, POSITIONS, VELOCITIES, ROTATIONS)


class InvalidMotionError(ValueError):
    """A motion array that cannot be a 272 motion (wrong shape, NaN, too short)."""


def validate_features(features: np.ndarray, source: str | Path = "motion") -> np.ndarray:
    """Return ``features`` as a float array or raise :class:`InvalidMotionError` naming ``source``."""
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] != FEATURE_DIM:
        raise InvalidMotionError(f"{source}: expected a (T, {FEATURE_DIM}) array, got shape {features.shape}")
    if features.shape[0] == 0:
        raise InvalidMotionError(f"{source}: the motion has zero frames")
    bad = ~np.isfinite(features)
    if bad.any():
        raise InvalidMotionError(f"{source}: {bad.sum()} NaN/infinite values in {describe_frames(np.nonzero(bad)[0])}")
    return features


def describe_frames(frame_indices: np.ndarray, limit: int = 8) -> str:
    """'3 frame(s): 4, 5, 9' naming the (0-based) frames, so a user can find them; long lists end in '...'."""
    frames = np.unique(frame_indices)
    shown = ", ".join(str(f) for f in frames[:limit]) + (", ..." if len(frames) > limit else "")
    return f"{len(frames)} frame(s): {shown}"


def canonicalize(joints: np.ndarray, rotations: np.ndarray, floor: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Turn a motion to face +Z at frame 0, put frame 0's pelvis at x = z = 0 and the floor at y = 0.

    ``floor``: the floor's height in ``joints`` (None: the lowest joint of the motion; pass the take's
    floor when a window may not touch the ground, e.g. hanging from a bar).
    ``decode_joints(encode_272(j, r))`` equals ``canonicalize(j, r)[0]``.
    """
    turn = yaw_matrix(-heading_angle(rotations[0, 0]))
    joints = joints @ turn.T
    rotations = rotations.copy()
    rotations[:, 0] = turn @ rotations[:, 0]
    origin = np.array([joints[0, 0, 0], joints[..., 1].min() if floor is None else floor, joints[0, 0, 2]])
    return joints - origin, rotations


def encode_272(joints: np.ndarray, rotations: np.ndarray, canonical: bool = True,
               floor: float | None = None) -> np.ndarray:
    """Encode joints (T, 22, 3) in metres and rotations (T, 22, 3, 3) as (T, 272) float64 features.

    Rotation 0 is the root's global orientation, 1..21 are local. The motion is first canonicalised
    (see :func:`canonicalize`). With ``canonical=False`` it keeps its world placement instead: frame
    0's heading and pelvis x/z go into row 0's heading and root-velocity slots (identity and zero in a
    canonical motion), which :func:`decode_joints` reads, so decode_joints(encode_272(j, r, False)) == j.
    Post-processing uses it so that a cleaned motion stays exactly where its input was. ``floor``: see
    :func:`canonicalize`.
    """
    joints = np.asarray(joints, dtype=np.float64)
    rotations = np.asarray(rotations, dtype=np.float64)
    num_frames = joints.shape[0]
    if joints.shape != (num_frames, NUM_JOINTS, 3) or rotations.shape != (num_frames, NUM_JOINTS, 3, 3):
        raise InvalidMotionError(
            f"encode_272 needs joints (T, 22, 3) and rotations (T, 22, 3, 3), got {joints.shape} and {rotations.shape}"
        )
    if num_frames < 1 or not (np.isfinite(joints).all() and np.isfinite(rotations).all()):
        raise InvalidMotionError("encode_272: empty motion or NaN/infinite input")
    if canonical:
        joints, rotations = canonicalize(joints, rotations, floor)

    heading = -heading_angle(rotations[:, 0])  # de-heading angle per frame
    deheading = yaw_matrix(heading)  # (T, 3, 3)
    root_velocity = joints[1:, 0] - joints[:-1, 0]
    local = joints.copy()
    local[..., [0, 2]] -= joints[:, :1, [0, 2]]
    local = np.einsum("tij,tkj->tki", deheading, local)

    features = np.zeros((num_frames, FEATURE_DIM))
    features[1:, ROOT_VEL] = np.einsum("tij,tj->ti", deheading[:-1], root_velocity)[:, [0, 2]]
    features[:, HEADING] = matrix_to_6d(np.eye(3))
    features[1:, HEADING] = matrix_to_6d(yaw_matrix(heading[1:] - heading[:-1]))
    if not canonical:  # where frame 0 stands and faces (decode_joints starts from row 0)
        features[0, HEADING] = matrix_to_6d(deheading[0])
        features[0, ROOT_VEL] = joints[0, 0, [0, 2]]
    features[:, POSITIONS] = local.reshape(num_frames, -1)
    features[1:, VELOCITIES] = (local[1:] - local[:-1]).reshape(num_frames - 1, 3 * NUM_JOINTS)
    rot = rotations.copy()
    rot[:, 0] = deheading @ rotations[:, 0]
    features[:, ROTATIONS] = matrix_to_6d(rot).reshape(num_frames, -1)
    return features


def _accumulated_heading(features: np.ndarray) -> np.ndarray:
    """G[t] = D[t] G[t-1]: the de-heading matrix of every frame, from the heading deltas."""
    heading = sixd_to_matrix(features[:, HEADING])
    # A prefix product in log2(T) batched steps instead of T small ones: after the step with shift s,
    # heading[t] is the product of the deltas t, t-1, ..., t-2s+1 (down to 0).
    shift = 1
    while shift < len(heading):
        heading[shift:] = heading[shift:] @ heading[:-shift]  # the right side is computed before assigning
        shift *= 2
    return heading


def _root_trajectory(features: np.ndarray, heading: np.ndarray) -> np.ndarray:
    velocity = np.zeros((len(features), 3))
    velocity[:, [0, 2]] = features[:, ROOT_VEL]
    velocity[1:] = np.einsum("tji,tj->ti", heading[:-1], velocity[1:])  # G[t-1]^T v[t]
    return np.cumsum(velocity, axis=0)


def decode_joints(features: np.ndarray) -> np.ndarray:
    """World joint positions (T, 22, 3) from de-normalised 272 features."""
    features = validate_features(features)
    heading = _accumulated_heading(features)
    local = features[:, POSITIONS].reshape(-1, NUM_JOINTS, 3)
    joints = np.einsum("tji,tkj->tki", heading, local)  # G[t]^T p
    trajectory = _root_trajectory(features, heading)
    joints[..., 0] += trajectory[:, None, 0]
    joints[..., 2] += trajectory[:, None, 2]
    return joints


def decode_rotations(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotations (T, 22, 3, 3) (root global, others local) and root positions (T, 3) from 272 features."""
    features = validate_features(features)
    heading = _accumulated_heading(features)
    rotations = sixd_to_matrix(features[:, ROTATIONS].reshape(-1, NUM_JOINTS, 6))
    rotations[:, 0] = np.swapaxes(heading, -1, -2) @ rotations[:, 0]
    trajectory = _root_trajectory(features, heading)
    root_positions = np.stack([trajectory[:, 0], features[:, POSITIONS.start + 1], trajectory[:, 2]], axis=-1)
    return rotations, root_positions


# Mirroring x -> -x: positions and velocities negate x; a rotation R becomes M R M with
# M = diag(-1, 1, 1), which in the first-two-rows 6D form flips the signs below.
_MIRROR_6D_SIGN = np.array([1.0, -1.0, -1.0, -1.0, 1.0, 1.0])
_MIRROR_XYZ_SIGN = np.array([-1.0, 1.0, 1.0])


def mirror_272(features: np.ndarray) -> np.ndarray:
    """Left/right mirror of a 272 motion (swap the L/R joints, reflect x), directly on the features."""
    features = np.asarray(features)
    out = features.copy()
    out[:, 0] = -features[:, 0]
    out[:, HEADING] = features[:, HEADING] * _MIRROR_6D_SIGN
    for block, width, sign in ((POSITIONS, 3, _MIRROR_XYZ_SIGN), (VELOCITIES, 3, _MIRROR_XYZ_SIGN), (ROTATIONS, 6, _MIRROR_6D_SIGN)):
        joints = features[:, block].reshape(len(features), NUM_JOINTS, width)
        out[:, block] = (joints[:, MIRROR_PERMUTATION] * sign).reshape(len(features), -1)
    return out
