"""Analytic limb inverse kinematics: a two-bone solve (hip-knee-ankle, shoulder-elbow-wrist) plus a foot re-aim.

Works on *global* rotations (T, 22, 3, 3) and FK joint positions, vectorised over frames; returns
new local rotations for the hip, knee and ankle only, so the rest of the body is untouched.
Convention (as in SMPL and the motion core): a joint's rotation moves its children, i.e.
``p_child = p_joint + G_joint @ offset_child``.
"""

from __future__ import annotations

import numpy as np

from motionmillion.motion.rotations import rotation_between
from motionmillion.motion.skeleton import PARENTS

# (hip, knee, ankle, toe) per side.
LEFT_LEG: tuple[int, int, int, int] = (1, 4, 7, 10)
RIGHT_LEG: tuple[int, int, int, int] = (2, 5, 8, 11)

_EPS = 1e-9


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _EPS)


def solve_leg(
    global_rot: np.ndarray,
    joints: np.ndarray,
    leg: tuple[int, int, int, int],
    ankle_target: np.ndarray,
    toe_target: np.ndarray,
) -> dict[int, np.ndarray]:
    """New *global* rotations of the hip, knee and ankle of one leg, for N frames.

    ``global_rot`` (N, 22, 3, 3) and ``joints`` (N, 22, 3) describe the current pose (FK-consistent);
    the ankle is moved onto ``ankle_target`` (N, 3) (beyond the leg's reach: straight above it, at
    full stretch, else as close as possible) with the
    knee bending in the plane that holds its current position (the pole), and the foot is then
    turned the least so the ankle->toe bone points at ``toe_target`` (N, 3). Bone lengths are kept.
    """
    hip, knee, ankle, toe = leg
    # Out of reach (a stretched stance leg at heel strike or heel-off): keep the target's floor
    # position and lift the ankle instead of pulling the foot towards the hip, i.e. sliding it.
    rotations, new_ankle = solve_two_bone(global_rot, joints, (hip, knee, ankle), ankle_target, lift=True)
    # Foot: keep its world orientation (flat stays flat), then aim the ankle->toe bone at the target.
    foot = global_rot[:, ankle]
    rotations[ankle] = rotation_between(joints[:, toe] - joints[:, ankle], toe_target - new_ankle) @ foot
    return rotations


def solve_two_bone(
    global_rot: np.ndarray, joints: np.ndarray, chain: tuple[int, int, int], target: np.ndarray, lift: bool = False
) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """({root: global, mid: global} rotations, new end positions (N, 3)) moving the chain's end (an ankle,
    a wrist) onto ``target`` (N, 3), bending the middle joint in the plane that holds it now (the pole).
    Beyond reach the limb stretches towards the target; with ``lift`` a target below the root keeps its
    horizontal position and the end rises instead. Bone lengths are kept."""
    root, mid, end = chain
    h, k, a = joints[:, root], joints[:, mid], joints[:, end]
    upper = np.linalg.norm(k - h, axis=-1)
    lower = np.linalg.norm(a - k, axis=-1)
    max_reach = (upper + lower) * (1.0 - 1e-6)
    to_target = target - h
    if lift:
        horizontal = np.linalg.norm(to_target[:, [0, 2]], axis=-1)
        lifted = (np.linalg.norm(to_target, axis=-1) > max_reach) & (horizontal < max_reach) & (to_target[:, 1] < 0)
        to_target = to_target.copy()
        to_target[lifted, 1] = -np.sqrt(max_reach[lifted] ** 2 - horizontal[lifted] ** 2)
    reach = np.clip(np.linalg.norm(to_target, axis=-1), np.abs(upper - lower) + 1e-6, max_reach)
    direction = _normalize(to_target)
    # Pole: the current middle joint, seen from the root, perpendicular to the target direction. A limb
    # that is almost straight has no usable pole; then the root's forward axis (+Z at rest) bends it.
    pole = (k - h) - np.sum((k - h) * direction, axis=-1, keepdims=True) * direction
    forward = global_rot[:, root] @ np.array([0.0, 0.0, 1.0])
    forward_pole = forward - np.sum(forward * direction, axis=-1, keepdims=True) * direction
    weak = np.linalg.norm(pole, axis=-1) < 1e-4 * np.maximum(upper, _EPS)
    pole = _normalize(np.where(weak[:, None], forward_pole, pole))

    # Law of cosines: angle at the root between the first bone and the root->end line.
    cos_root = np.clip((upper**2 + reach**2 - lower**2) / (2.0 * upper * reach), -1.0, 1.0)
    sin_root = np.sqrt(1.0 - cos_root**2)
    new_mid = h + upper[:, None] * (cos_root[:, None] * direction + sin_root[:, None] * pole)
    new_end = h + reach[:, None] * direction

    swing = rotation_between(k - h, new_mid - h)
    root_rot = swing @ global_rot[:, root]
    second = np.einsum("nij,nj->ni", swing, a - k)
    mid_rot = rotation_between(second, new_end - new_mid) @ swing @ global_rot[:, mid]
    return {root: root_rot, mid: mid_rot}, new_end


def globals_to_locals(global_rot: np.ndarray, new_globals: dict[int, np.ndarray], local_rot: np.ndarray) -> np.ndarray:
    """Local rotations after replacing some joints' global rotations (N frames).

    Only the changed joints and their direct children get new local rotations; every other joint
    keeps its local rotation bit for bit. A changed joint's children keep their *global* rotation
    if they were changed too, else their local one (so a leaf toe turns with its foot).
    """
    out = local_rot.copy()
    merged = {j: global_rot[:, j] for j in range(global_rot.shape[1])}
    merged.update(new_globals)
    for j in sorted(new_globals):
        parent = PARENTS[j]
        out[:, j] = np.swapaxes(merged[parent], -1, -2) @ merged[j] if parent >= 0 else merged[j]
    return out
