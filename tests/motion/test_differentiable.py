"""The torch kinematics used by losses agree with the numpy reference implementations."""

import numpy as np
import torch

from motionmillion.motion import differentiable as kin
from motionmillion.motion.kinematics import fit_offsets, forward_kinematics, joints_from_global, local_to_global
from motionmillion.motion.rotations import axis_angle_to_matrix, matrix_to_6d, sixd_to_matrix
from motionmillion.motion.skeleton import TEMPLATE_OFFSETS


def test_torch_twins_match_the_numpy_kinematics():
    rng = np.random.default_rng(0)
    rotations = axis_angle_to_matrix(rng.normal(0, 0.5, size=(7, 22, 3)))
    sixd = matrix_to_6d(rotations) + rng.normal(0, 0.05, size=(7, 22, 6))  # not orthonormal: Gram-Schmidt matters
    assert np.allclose(kin.sixd_to_matrix(torch.tensor(sixd)).numpy(), sixd_to_matrix(sixd), atol=1e-12)

    root = rng.normal(0, 1, size=(7, 3))
    joints = forward_kinematics(rotations, root, TEMPLATE_OFFSETS)
    global_np = local_to_global(rotations)
    global_t = kin.local_to_global(torch.tensor(rotations))
    assert np.allclose(global_t.numpy(), global_np, atol=1e-12)

    offsets = kin.fit_offsets(torch.tensor(joints), global_t)  # (1, 21, 3), children order
    assert np.allclose(offsets[0].numpy(), fit_offsets(joints, rotations)[1:], atol=1e-12)
    posed = kin.joints_from_global(global_t, torch.tensor(root), offsets)
    assert np.allclose(posed.numpy(), joints_from_global(global_np, root, TEMPLATE_OFFSETS), atol=1e-12)
