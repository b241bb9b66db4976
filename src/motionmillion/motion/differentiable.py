"""Torch twins of the kinematics in :mod:`motion.rotations`, :mod:`motion.kinematics`,
:mod:`motion.representation` and :mod:`motion.contact`, for losses that need gradients (the tokenizer's kinematic terms). Same conventions and shapes: 6D rotations are the first
two rows, rotation 0 is the root's global orientation, offsets are parent-to-joint rest vectors; the
numpy functions stay the reference (tests compare the two).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from motionmillion.motion.contact import DEFAULT_CONTACT_HEIGHTS, DEFAULT_CONTACT_MAX_SPEED
from motionmillion.motion.representation import HEADING, POSITIONS, ROOT_VEL
from motionmillion.motion.skeleton import FOOT_JOINTS, NUM_JOINTS, PARENTS

CHILDREN = list(range(1, NUM_JOINTS))
BONE_PARENTS = [PARENTS[j] for j in CHILDREN]


def sixd_to_matrix(sixd: torch.Tensor) -> torch.Tensor:
    """:func:`motion.rotations.sixd_to_matrix`: (..., 6) -> (..., 3, 3), rows b1, b2, b1 x b2."""
    b1 = F.normalize(sixd[..., :3], dim=-1)
    a2 = sixd[..., 3:6]
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    return torch.stack([b1, b2, torch.linalg.cross(b1, b2)], dim=-2)


def local_to_global(rotations: torch.Tensor) -> torch.Tensor:
    """:func:`motion.kinematics.local_to_global`: G_j = G_parent(j) R_j over (..., 22, 3, 3)."""
    out = [rotations[..., 0, :, :]]
    for j in CHILDREN:
        out.append(out[PARENTS[j]] @ rotations[..., j, :, :])
    return torch.stack(out, dim=-3)


def bones(joints: torch.Tensor) -> torch.Tensor:
    """(..., 21, 3) parent-to-child vectors of joints (..., 22, 3), in CHILDREN order."""
    return joints[..., CHILDREN, :] - joints[..., BONE_PARENTS, :]


def fit_offsets(joints: torch.Tensor, global_rot: torch.Tensor) -> torch.Tensor:
    """:func:`motion.kinematics.fit_offsets` from global rotations, over the frame axis -3 of (..., T, 22, ...):
    (..., 1, 21, 3) offsets (CHILDREN order) = mean_t G_parent^T (p_j - p_parent)."""
    local = global_rot[..., BONE_PARENTS, :, :].transpose(-1, -2) @ bones(joints).unsqueeze(-1)
    return local.squeeze(-1).mean(dim=-3, keepdim=True)


def joints_from_global(global_rot: torch.Tensor, root_positions: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """:func:`motion.kinematics.joints_from_global` with offsets (..., 21, 3) in CHILDREN order."""
    joints = [root_positions]
    for k, j in enumerate(CHILDREN):
        parent = PARENTS[j]
        joints.append(joints[parent] + (global_rot[..., parent, :, :] @ offsets[..., k, :, None]).squeeze(-1))
    return torch.stack(joints, dim=-2)


def accumulated_heading(deltas: torch.Tensor) -> torch.Tensor:
    """:func:`motion.representation._accumulated_heading` over the frame axis -3 of (..., T, 3, 3):
    G[t] = D[t] G[t-1], as a prefix product in log2(T) steps."""
    heading, shift = deltas, 1
    while shift < heading.shape[-3]:
        heading = torch.cat([heading[..., :shift, :, :], heading[..., shift:, :, :] @ heading[..., :-shift, :, :]], dim=-3)
        shift *= 2
    return heading


def decode_joints(features: torch.Tensor) -> torch.Tensor:
    """:func:`motion.representation.decode_joints`: world joints (..., T, 22, 3) from de-normalised
    (..., T, 272) features; row 0 places the first frame (a window's motion starts where its row 0 says)."""
    heading = accumulated_heading(sixd_to_matrix(features[..., HEADING]))
    local = features[..., POSITIONS].unflatten(-1, (NUM_JOINTS, 3))
    joints = torch.einsum("...tji,...tkj->...tki", heading, local)  # G[t]^T p
    vx, vz = features[..., ROOT_VEL].unbind(-1)
    velocity = torch.stack([vx, torch.zeros_like(vx), vz], dim=-1)
    turned = torch.einsum("...tji,...tj->...ti", heading[..., :-1, :, :], velocity[..., 1:, :])  # G[t-1]^T v[t]
    trajectory = torch.cumsum(torch.cat([velocity[..., :1, :], turned], dim=-2), dim=-2)
    trajectory = trajectory * trajectory.new_tensor([1.0, 0.0, 1.0])  # x, z only, as the numpy decoder
    return joints + trajectory.unsqueeze(-2)


def foot_speeds(joints: torch.Tensor, fps: float) -> torch.Tensor:
    """:func:`motion.contact.foot_speeds` over the frame axis -3 of (..., T, 22, 3): (..., T-1, 4) in m/s."""
    feet = joints[..., list(FOOT_JOINTS), :][..., [0, 2]]
    return (feet[..., 1:, :, :] - feet[..., :-1, :, :]).norm(dim=-1) * fps


def contact_transitions(joints: torch.Tensor, fps: float) -> torch.Tensor:
    """:func:`motion.contact.contact_transitions` with its defaults (floor at 0): (..., T-1, 4) bool."""
    low = joints[..., list(FOOT_JOINTS), 1] < joints.new_tensor(DEFAULT_CONTACT_HEIGHTS)
    return low[..., :-1, :] & low[..., 1:, :] & (foot_speeds(joints, fps) < DEFAULT_CONTACT_MAX_SPEED)
