"""Properties of the rotation conversions and the 272 representation."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from motionmillion.motion import (
    FEATURE_DIM,
    InvalidMotionError,
    Normalizer,
    canonicalize,
    compute_mean_std,
    decode_joints,
    decode_rotations,
    encode_272,
    align_rotations_to_positions,
    fit_offsets,
    forward_kinematics,
    mirror_272,
    rotations_from_positions,
    validate_features,
)
from motionmillion.motion.representation import FEATURE_GROUPS
from motionmillion.motion.rotations import (
    axis_angle_to_matrix,
    euler_to_matrix,
    heading_angle,
    kabsch,
    matrix_to_6d,
    matrix_to_axis_angle,
    matrix_to_euler,
    rotation_between,
    sixd_to_matrix,
    yaw_matrix,
)
from motionmillion.motion.skeleton import MIRROR_PERMUTATION, TEMPLATE_OFFSETS

finite = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False)
rotvecs = arrays(np.float64, (5, 3), elements=finite)


def random_motion(rng, frames=40, scale=0.5, skeleton_scale=1.0):
    rotations = axis_angle_to_matrix(rng.normal(scale=scale, size=(frames, 22, 3)))
    root = np.cumsum(rng.normal(scale=0.03, size=(frames, 3)), axis=0) + [0.0, 0.95, 0.0]
    joints = forward_kinematics(rotations, root, TEMPLATE_OFFSETS * skeleton_scale)
    return joints, rotations


@given(rotvecs)
def test_6d_round_trip_and_first_two_rows(rotvec):
    matrix = axis_angle_to_matrix(rotvec)
    sixd = matrix_to_6d(matrix)
    np.testing.assert_allclose(sixd[:, :3], matrix[:, 0, :])  # first ROW, not column
    np.testing.assert_allclose(sixd_to_matrix(sixd), matrix, atol=1e-10)


@given(rotvecs)
def test_axis_angle_and_euler_round_trips(rotvec):
    matrix = axis_angle_to_matrix(rotvec)
    np.testing.assert_allclose(axis_angle_to_matrix(matrix_to_axis_angle(matrix)), matrix, atol=1e-9)
    for order in ("ZXY", "ZYX", "XYZ"):
        np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(matrix, order), order), matrix, atol=1e-9)


def test_euler_is_intrinsic_in_channel_order():
    angles = np.array([30.0, -20.0, 45.0])  # Z, X, Y
    expected = (
        axis_angle_to_matrix(np.array([0, 0, np.radians(30)]))
        @ axis_angle_to_matrix(np.array([np.radians(-20), 0, 0]))
        @ axis_angle_to_matrix(np.array([0, np.radians(45), 0]))
    )
    np.testing.assert_allclose(euler_to_matrix(angles, "ZXY"), expected, atol=1e-12)


@given(arrays(np.float64, (4, 3), elements=finite), arrays(np.float64, (4, 3), elements=finite))
def test_rotation_between_maps_direction(a, b):
    a = a + np.array([0.0, 0.0, 1e-3]) * (np.linalg.norm(a, axis=-1, keepdims=True) < 1e-3)
    b = b + np.array([1e-3, 0.0, 0.0]) * (np.linalg.norm(b, axis=-1, keepdims=True) < 1e-3)
    rot = rotation_between(a, b)
    mapped = np.einsum("nij,nj->ni", rot, a / np.linalg.norm(a, axis=-1, keepdims=True))
    np.testing.assert_allclose(mapped, b / np.linalg.norm(b, axis=-1, keepdims=True), atol=1e-7)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-9)


def test_rotation_between_antiparallel():
    rot = rotation_between(np.array([0.0, 1.0, 0.0]), np.array([0.0, -1.0, 0.0]))
    np.testing.assert_allclose(rot @ [0.0, 1.0, 0.0], [0.0, -1.0, 0.0], atol=1e-12)


def test_kabsch_recovers_rotation(rng):
    rot = axis_angle_to_matrix(rng.normal(size=3))
    points = rng.normal(size=(6, 3))
    np.testing.assert_allclose(kabsch(points, points @ rot.T), rot, atol=1e-10)


def test_yaw_and_heading():
    for angle in (-2.5, -0.3, 0.0, 1.0, 3.0):
        assert heading_angle(yaw_matrix(angle)) == pytest.approx(angle)
    np.testing.assert_allclose(yaw_matrix(np.pi / 2) @ [0, 0, 1], [1, 0, 0], atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 60), st.floats(0.05, 1.5), st.floats(0.5, 1.3))
def test_272_round_trip(seed, frames, scale, skeleton_scale):
    rng = np.random.default_rng(seed)
    joints, rotations = random_motion(rng, frames, scale, skeleton_scale)
    features = encode_272(joints, rotations)
    assert features.shape == (frames, FEATURE_DIM)
    canon_joints, canon_rotations = canonicalize(joints, rotations)
    np.testing.assert_allclose(decode_joints(features), canon_joints, atol=1e-5)
    decoded_rotations, root = decode_rotations(features)
    np.testing.assert_allclose(decoded_rotations, canon_rotations, atol=1e-8)
    np.testing.assert_allclose(root, canon_joints[:, 0], atol=1e-8)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 40), st.floats(-3.0, 3.0), st.floats(-2.0, 2.0))
def test_non_canonical_encode_keeps_the_world_placement(seed, frames, yaw, shift):
    rng = np.random.default_rng(seed)
    joints, rotations = random_motion(rng, frames)
    turn = yaw_matrix(yaw)
    joints = joints @ turn.T + [shift, 0.3, -shift]
    rotations[:, 0] = turn @ rotations[:, 0]
    features = encode_272(joints, rotations, canonical=False)
    np.testing.assert_allclose(decode_joints(features), joints, atol=1e-9)
    decoded_rotations, root = decode_rotations(features)
    np.testing.assert_allclose(decoded_rotations, rotations, atol=1e-9)
    np.testing.assert_allclose(root, joints[:, 0], atol=1e-9)
    # frames after the first are encoded exactly as in a canonical encode (deltas are placement-free)
    canonical = encode_272(joints, rotations)
    np.testing.assert_allclose(features[1:, :2], canonical[1:, :2], atol=1e-9)
    np.testing.assert_allclose(features[:, 74:], canonical[:, 74:], atol=1e-9)


def test_align_rotations_keeps_consistent_motions_and_twist(rng):
    joints, rotations = random_motion(rng, 30)
    np.testing.assert_allclose(align_rotations_to_positions(rotations, joints, TEMPLATE_OFFSETS), rotations, atol=1e-9)
    # Rotations that disagree with the positions (as a generator's do) are turned back onto them...
    noisy = axis_angle_to_matrix(rng.normal(scale=0.05, size=(30, 22, 3))) @ rotations
    aligned = align_rotations_to_positions(noisy, joints, TEMPLATE_OFFSETS)
    np.testing.assert_allclose(forward_kinematics(aligned, joints[:, 0], TEMPLATE_OFFSETS), joints, atol=1e-6)
    # ...while leaf joints (head 15, wrists 20/21, toes 10/11) keep their local rotation.
    for leaf in (10, 11, 15, 20, 21):
        np.testing.assert_allclose(aligned[:, leaf], noisy[:, leaf], atol=1e-9)


def test_272_layout_facts(rng):
    joints, rotations = random_motion(rng, 50)
    f = encode_272(joints, rotations)
    np.testing.assert_array_equal(f[0, 0:2], 0)
    np.testing.assert_array_equal(f[0, 74:140], 0)
    np.testing.assert_allclose(f[0, 2:8], [1, 0, 0, 0, 1, 0])
    np.testing.assert_allclose(f[1:, 74:140], np.diff(f[:, 8:74], axis=0), atol=1e-12)
    local = f[:, 8:74].reshape(-1, 22, 3)
    np.testing.assert_allclose(local[:, 0, [0, 2]], 0, atol=1e-12)  # pelvis x = z = 0
    assert local[..., 1].min() == pytest.approx(0.0, abs=1e-12)  # floor at y = 0
    root6d = f[:, 140:146]
    np.testing.assert_allclose(heading_angle(sixd_to_matrix(root6d)), 0, atol=1e-9)  # heading removed
    # Canonical frame 0 faces +Z: world root orientation has zero heading.
    rotations_out, _ = decode_rotations(f)
    assert heading_angle(rotations_out[0, 0]) == pytest.approx(0.0, abs=1e-9)


def test_canonicalize_is_invariant_to_world_placement(rng):
    joints, rotations = random_motion(rng, 30)
    turn = yaw_matrix(1.1)
    moved_joints = joints @ turn.T + [3.0, 0.4, -2.0]
    moved_rotations = rotations.copy()
    moved_rotations[:, 0] = turn @ rotations[:, 0]
    np.testing.assert_allclose(encode_272(moved_joints, moved_rotations), encode_272(joints, rotations), atol=1e-9)


def test_mirror_swaps_sides_and_is_an_involution(rng):
    joints, rotations = random_motion(rng, 30)
    f = encode_272(joints, rotations)
    mirrored = mirror_272(f)
    canon, canon_rot = canonicalize(joints, rotations)
    np.testing.assert_allclose(decode_joints(mirrored), canon[:, MIRROR_PERMUTATION] * [-1, 1, 1], atol=1e-9)
    reflect = np.diag([-1.0, 1.0, 1.0])
    np.testing.assert_allclose(
        decode_rotations(mirrored)[0], (reflect @ canon_rot @ reflect)[:, MIRROR_PERMUTATION], atol=1e-9
    )
    np.testing.assert_allclose(mirror_272(mirrored), f)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.05, 1.0), st.floats(0.6, 1.4))
def test_rotations_from_positions_reproduce_rigid_joints(seed, scale, skeleton_scale):
    rng = np.random.default_rng(seed)
    joints, _ = random_motion(rng, 20, scale, skeleton_scale)
    rotations = rotations_from_positions(joints)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-9)
    offsets = fit_offsets(joints, rotations)
    np.testing.assert_allclose(forward_kinematics(rotations, joints[:, 0], offsets), joints, atol=1e-8)


def test_normalizer_group_std_and_inverse(rng):
    clips = [rng.normal(size=(n, FEATURE_DIM)) * rng.uniform(0.1, 2.0, FEATURE_DIM) for n in (10, 25)]
    mean, std = compute_mean_std(clips)
    for group in FEATURE_GROUPS:
        assert np.ptp(std[group]) == 0
    norm = Normalizer(mean, std)
    np.testing.assert_allclose(norm.denormalize(norm.normalize(clips[0])), clips[0], atol=1e-12)


def test_reference_statistics_load():
    from pathlib import Path

    ref = Path(__file__).resolve().parents[3] / "shared" / "data" / "reference"
    if not ref.exists():
        pytest.skip("../shared not beside the checkout")
    norm = Normalizer(np.load(ref / "motionmillion_mean_272.npy"), np.load(ref / "motionmillion_std_272.npy"))
    for group in FEATURE_GROUPS:  # the reference std is group-averaged too
        assert np.ptp(norm.std[group]) < 1e-12


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((10, 263)), "expected a"),
        (np.zeros((0, 272)), "zero frames"),
        (np.full((5, 272), np.nan), "NaN"),
    ],
)
def test_validate_features_names_the_problem(bad, message):
    with pytest.raises(InvalidMotionError, match=message):
        validate_features(bad, "clip.npy")
    with pytest.raises(InvalidMotionError, match="clip.npy"):
        validate_features(bad, "clip.npy")
