"""Forward kinematics, local/global rotations, skeleton fitting and rotations from joint positions.

Rotation arrays are (T, 22, 3, 3) with joint 0 the root's global orientation and joints 1..21 local
(parent-relative) rotations, as in SMPL and in the 272 representation. Offsets are (22, 3): the
rest-pose vector from each joint's parent to the joint (row 0 unused).
"""

from __future__ import annotations

import numpy as np

from motionmillion.motion.rotations import kabsch, matrix_to_6d, rotation_between, sixd_to_matrix
from motionmillion.motion.skeleton import NUM_JOINTS, PARENTS, TEMPLATE_OFFSETS, children


def local_to_global(rotations: np.ndarray) -> np.ndarray:
    """Chain local rotations down the tree: G_j = G_parent(j) R_j."""
    global_rot = np.empty_like(rotations)
    global_rot[..., 0, :, :] = rotations[..., 0, :, :]
    for j in range(1, NUM_JOINTS):
        global_rot[..., j, :, :] = global_rot[..., PARENTS[j], :, :] @ rotations[..., j, :, :]
    return global_rot


def global_to_local(global_rot: np.ndarray) -> np.ndarray:
    local = np.empty_like(global_rot)
    local[..., 0, :, :] = global_rot[..., 0, :, :]
    for j in range(1, NUM_JOINTS):
        local[..., j, :, :] = np.swapaxes(global_rot[..., PARENTS[j], :, :], -1, -2) @ global_rot[..., j, :, :]
    return local


def joint_steps(joints: np.ndarray) -> np.ndarray:
    """(T - 1,) the largest distance any joint of (T, 22, 3) moves between consecutive frames."""
    return np.linalg.norm(np.diff(joints, axis=0), axis=-1).max(axis=-1)


def forward_kinematics(rotations: np.ndarray, root_positions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Joint positions (T, 22, 3) from rotations (T, 22, 3, 3), root positions (T, 3), offsets (22, 3)."""
    return joints_from_global(local_to_global(rotations), root_positions, offsets)


def joints_from_global(global_rot: np.ndarray, root_positions: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """:func:`forward_kinematics` from global rotations (for callers that have them already)."""
    joints = np.empty(global_rot.shape[:-3] + (NUM_JOINTS, 3))
    joints[..., 0, :] = root_positions
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        joints[..., j, :] = joints[..., p, :] + global_rot[..., p, :, :] @ offsets[j]
    return joints


def fit_offsets(joints: np.ndarray, rotations: np.ndarray) -> np.ndarray:
    """Least-squares skeleton for a motion: offset_j = mean_t G_parent(t)^T (p_j(t) - p_parent(t)).

    Exact when the motion's positions and rotations come from one rigid skeleton (every imported
    clip); the best rigid fit otherwise (a generated motion).
    """
    global_rot = local_to_global(rotations)
    offsets = np.zeros((NUM_JOINTS, 3))
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        bone = joints[:, j] - joints[:, p]
        offsets[j] = np.einsum("tji,tj->ti", global_rot[:, p], bone).mean(axis=0)
    return offsets


def align_rotations_to_positions(rotations: np.ndarray, joints: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """The local rotations closest to ``rotations`` whose bones point where ``joints`` say.

    Walking from the root outwards, each joint keeps its local rotation and then turns by the least
    rotation (Kabsch for joints with several children) that points its offset bones along the observed
    bones ``joints[child] - joints[joint]``. Twist and leaf rotations (head, wrists, toes) are kept,
    unlike :func:`rotations_from_positions`. Used to make a generated motion, whose rotations and
    positions disagree slightly, consistent before editing it; a consistent motion comes back as is.
    """
    return align_globals(rotations, local_to_global(rotations), joints, offsets)[0]


def align_globals(
    rotations: np.ndarray, global_rot: np.ndarray, joints: np.ndarray, offsets: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`align_rotations_to_positions` given the rotations' globals too; returns the aligned local
    rotations and their global rotations (for forward kinematics without walking the chain again)."""
    aligned = np.empty_like(global_rot)
    for j in range(NUM_JOINTS):
        base = aligned[:, PARENTS[j]] @ rotations[:, j] if j > 0 else global_rot[:, 0]
        kids = children(j)
        if not kids:
            aligned[:, j] = base
            continue
        source = np.einsum("tij,kj->tki", base, offsets[kids])
        target = joints[:, kids] - joints[:, j : j + 1]
        if len(kids) > 1:
            turn = kabsch(source, target)
        else:
            turn = rotation_between(source[:, 0], target[:, 0])
        aligned[:, j] = turn @ base
    # Re-orthonormalise the accumulated products (Gram-Schmidt: a batched SVD costs 3x the whole walk).
    aligned = sixd_to_matrix(matrix_to_6d(aligned))
    return global_to_local(aligned), aligned


def rotations_from_positions(joints: np.ndarray, template_offsets: np.ndarray = TEMPLATE_OFFSETS) -> np.ndarray:
    """Rotations (T, 22, 3, 3) whose forward kinematics reproduce ``joints`` (T, 22, 3).

    Chain-wise alignment of the template skeleton: joints with several children (pelvis, spine3)
    get the rotation that best aligns their template child bones (Kabsch), joints with one child
    the smallest rotation that points the template bone at the observed one (so twist follows the
    parent), leaf joints the identity. With :func:`fit_offsets` on the result, FK reproduces the
    input exactly for a rigid skeleton.
    """
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3):
        raise ValueError(f"joints must have shape (T, {NUM_JOINTS}, 3), got {joints.shape}")
    num_frames = joints.shape[0]
    global_rot = np.tile(np.eye(3), (num_frames, NUM_JOINTS, 1, 1))
    for j in range(NUM_JOINTS):
        kids = children(j)
        parent_rot = global_rot[:, PARENTS[j]] if j > 0 else np.tile(np.eye(3), (num_frames, 1, 1))
        if len(kids) > 1:
            source = np.broadcast_to(template_offsets[kids], (num_frames, len(kids), 3))
            target = joints[:, kids] - joints[:, j : j + 1]
            global_rot[:, j] = kabsch(source, target)
        elif len(kids) == 1:
            rest_dir = parent_rot @ template_offsets[kids[0]]
            global_rot[:, j] = rotation_between(rest_dir, joints[:, kids[0]] - joints[:, j]) @ parent_rot
        else:
            global_rot[:, j] = parent_rot
    # Re-orthonormalise accumulated products before handing them out.
    u, _, vt = np.linalg.svd(global_rot)
    global_rot = u @ vt
    return global_to_local(global_rot)
