"""Foot-sliding removal on 272 features: pin contacts, ease around them, solve the legs, re-encode.

1. Decode rotations and root, fit the motion's own skeleton (bone lengths), turn the rotations so
   the bones point where the decoded joints are (``motionmillion.motion.consistency``) and run
   forward kinematics, so every position we touch is consistent with the rotations.
2. Whole-body glide: the slow part of the planted feet's horizontal motion is taken off the root
   trajectory (:func:`remove_glide`), moving the whole body, its pose unchanged.
3. Detect contact runs per foot joint (ankle, toe) and pin each run to its mean position; the
   frames around a run move by the pin offset faded out with a cubic ease over ``blend_frames``.
4. Analytic two-bone IK per leg (hip-knee-ankle) plus a foot re-aim (ankle->toe) changes only the
   hip, knee and ankle rotations: pelvis, spine, arms and head are untouched.
5. New joints = forward kinematics of the new rotations; the features are re-encoded with
   ``encode_272(canonical=False)`` so positions, velocities and rotations agree and the motion
   stays where its input was (no re-canonicalising turn or shift).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from motionmillion.motion import forward_kinematics, local_to_global, validate_features
from motionmillion.motion.consistency import consistent_skeleton, encode_consistent
from motionmillion.motion.contact import CONTACT_JOINTS, ContactConfig, contact_runs, foot_contacts
from motionmillion.motion.rotations import axis_angle_to_matrix
from motionmillion.motion.skeleton import FPS, NUM_JOINTS
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
    # Whole-body glide: the horizontal velocity of the planted feet, smoothed over this many seconds
    # (Gaussian sigma), is taken off the root (see remove_glide); 0 leaves the root trajectory alone.
    # Two seconds pass a slow drift but hardly a leg's sway, which the leg IK fixes (on clips of a few
    # seconds part of a sway still reads as glide and moves the body by a few centimetres).
    glide_seconds: float = 2.0


DEFAULT_SLIDING = SlidingConfig()


GLIDE_RAMP = 0.01  # m/s over which a glide goes from left alone to removed whole
# Direction coherence (|smoothed vector| / smoothed length, 1 = one direction) below which the slip
# is not a glide, and the ramp above it to a glide removed whole. Measured at 2 s on Bandai clips:
# hip sway 0.03-0.6, a 5 cm/s drift 0.5-0.99.
MIN_COHERENCE, COHERENCE_RAMP = 0.4, 0.3


def remove_glide(
    joints: np.ndarray,
    root_positions: np.ndarray,
    contacts: np.ndarray,
    fps: float,
    glide_seconds: float,
    min_speed: float = 0.04,
    settle_frames: int = 3,
) -> np.ndarray:
    """Root positions (T, 3) without the body's glide over planted feet.

    The glide is the mean horizontal displacement per frame of the foot joints in contact at both
    ends of a frame step (ignoring the first and last ``settle_frames`` of each contact), low-passed
    with a Gaussian of ``glide_seconds`` (normalised by how many steps had a contact nearby, so a
    run's flight phases do not dilute it), faded out where no foot is planted, and kept only where
    it keeps its direction and is faster than ``min_speed`` (m/s; fully from 1 cm/s more). Its running sum is taken off the
    root's x/z, so the whole body moves back, its pose relative to the pelvis unchanged.
    """
    from scipy.ndimage import binary_erosion, gaussian_filter1d
    root_positions = np.array(root_positions, dtype=np.float64)
    if glide_seconds <= 0 or len(joints) < 2:
        return root_positions
    # Mid-stance only: a foot landing or rolling off still moves in real motion capture, and that
    # motion is systematic (a clean walk would be pulled back by decimetres), the drift is not.
    if settle_frames > 0:
        contacts = binary_erosion(contacts, np.ones((2 * settle_frames + 1, 1), dtype=bool), border_value=0)
    planted = contacts[:-1] & contacts[1:]  # (T-1, 4)
    steps = np.diff(joints[:, CONTACT_JOINTS][..., [0, 2]], axis=0)  # (T-1, 4, 2)
    present = planted.any(axis=1).astype(np.float64)
    glide = (steps * planted[..., None]).sum(axis=1) / np.maximum(planted.sum(axis=1), 1)[:, None]
    sigma = glide_seconds * fps
    smoothed = gaussian_filter1d(glide, sigma, axis=0, mode="nearest")
    # A glide keeps its direction; a leg's sway (or capture noise) seen at mid-stance frames points
    # every way, so its smoothed vector is much shorter than its smoothed length.
    coherence = np.linalg.norm(smoothed, axis=-1) / np.maximum(
        gaussian_filter1d(np.linalg.norm(glide, axis=-1), sigma, mode="nearest"), 1e-12
    )
    smoothed *= np.clip((coherence - MIN_COHERENCE) / COHERENCE_RAMP, 0.0, 1.0)[:, None]
    smoothed /= np.maximum(gaussian_filter1d(present, sigma, mode="nearest"), 1e-6)[:, None]
    # Real capture creeps on planted feet too (up to ~4 cm/s on Bandai walks; removing that would
    # pull a clean walk back by decimetres): a glide slower than min_speed is left to the leg IK, one
    # faster than min_speed + 1 cm/s is removed whole, with a linear ramp in between.
    speed = np.linalg.norm(smoothed, axis=-1) * fps
    smoothed *= np.clip((speed - min_speed) / GLIDE_RAMP, 0.0, 1.0)[:, None]
    # Fade in/out over a few frames around contacts instead of switching (no velocity jump).
    smoothed *= gaussian_filter1d(present, 2.0, mode="nearest")[:, None]
    root_positions[1:, [0, 2]] -= np.cumsum(smoothed, axis=0)
    return root_positions


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
    # A body gliding over planted feet is moved back by its root; what is left is the legs' doing.
    root = remove_glide(joints, root, contacts, fps, config.glide_seconds)
    joints = forward_kinematics(rotations, root, offsets)

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


def inject_glide(features: np.ndarray, speed: float = 0.075, seed: int = 0) -> np.ndarray:
    """Add a whole-body glide to a clean motion (for tests and benchmarks): the root drifts at
    ``speed`` m/s in a random horizontal direction that turns slowly (up to 30 degrees over the clip),
    so planted feet slide with the body while the pose itself does not change."""
    features = validate_features(features)
    rng = np.random.default_rng(seed)
    rotations, root, offsets = consistent_skeleton(features)
    heading = rng.uniform(0.0, 2.0 * np.pi) + np.radians(rng.uniform(-30.0, 30.0)) * np.linspace(0.0, 1.0, len(root))
    step = speed / FPS * np.stack([np.cos(heading), np.sin(heading)], axis=-1)
    root = root.copy()
    root[:, [0, 2]] += np.cumsum(step, axis=0) - step[0]
    return encode_consistent(rotations, root, offsets)


def leg_free_joints() -> list[int]:
    """Joints the sliding fix never moves (everything but hips, knees, ankles and toes)."""
    legs = set(LEFT_LEG + RIGHT_LEG)
    return [j for j in range(NUM_JOINTS) if j not in legs]
