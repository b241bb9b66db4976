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


def test_torch_decode_joints_matches_the_numpy_decoder():
    from motionmillion.motion import decode_joints, encode_272
    from motionmillion.motion.representation import HEADING

    rng = np.random.default_rng(1)
    frames = 37  # not a power of 2: the prefix product's last step is partial
    rotations = axis_angle_to_matrix(rng.normal(0, 0.3, size=(frames, 22, 3)))
    rotations[:, 0] = axis_angle_to_matrix(np.stack([np.zeros(frames), np.linspace(0, 4, frames), np.zeros(frames)], -1))
    root = np.stack([np.linspace(0, 2, frames), np.full(frames, 0.9), np.sin(np.linspace(0, 3, frames))], axis=-1)
    features = encode_272(forward_kinematics(rotations, root, TEMPLATE_OFFSETS), rotations)
    features[:, HEADING] += rng.normal(0, 0.05, size=(frames, 6))  # decoded features are not exact rotations
    batch = torch.tensor(np.stack([features, features[::-1].copy()]))
    decoded = kin.decode_joints(batch).numpy()
    assert np.allclose(decoded[0], decode_joints(features), atol=1e-9)
    assert np.allclose(decoded[1], decode_joints(features[::-1].copy()), atol=1e-9)


def test_torch_foot_contact_matches_the_numpy_test():
    from motionmillion.motion.contact import contact_transitions, foot_speeds

    rng = np.random.default_rng(2)
    joints = rng.normal(0, 0.02, size=(2, 40, 22, 3)).cumsum(axis=1)  # wandering joints near the floor
    joints[..., 1] = np.abs(joints[..., 1])
    speeds = kin.foot_speeds(torch.tensor(joints), 30.0).numpy()
    flags = kin.contact_transitions(torch.tensor(joints), 30.0).numpy()
    for b in range(2):
        assert np.allclose(speeds[b], foot_speeds(joints[b], 30.0), atol=1e-12)
        assert np.array_equal(flags[b], contact_transitions(joints[b], 30.0))
    assert 0 < flags.mean() < 1
