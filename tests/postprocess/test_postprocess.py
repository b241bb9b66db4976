"""Foot contact, sliding removal, smoothing, floor alignment and the postprocess CLI."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from motionmillion.evaluation.physical import foot_skating
from motionmillion.motion import (
    InvalidMotionError,
    decode_joints,
    decode_rotations,
    encode_272,
    fit_offsets,
    forward_kinematics,
    local_to_global,
)
from motionmillion.motion.rotations import axis_angle_to_matrix, matrix_to_6d, sixd_to_matrix, yaw_matrix
from motionmillion.postprocess import (
    MIN_FRAMES,
    PostprocessConfig,
    PostprocessWarning,
    SmoothingWindowError,
    align_floor,
    check_window,
    contact_metrics,
    contact_runs,
    detect_floor,
    fix_foot_sliding,
    foot_contacts,
    postprocess_features,
    smooth_motion,
)
from motionmillion.postprocess.cli import postprocess_command
from motionmillion.motion.consistency import encode_consistent
from motionmillion.postprocess.ik import LEFT_LEG, solve_leg
from motionmillion.postprocess.sliding import SlidingConfig, inject_glide, inject_sliding, leg_free_joints, pin_offsets

WALK_BVH = (
    Path(__file__).parents[1]
    / "fixtures/bvh/bandai/Bandai-Namco-Research-Motiondataset-1/data/dataset-1_walk_normal_001.bvh"
)


@pytest.fixture(scope="module")
def walk() -> np.ndarray:
    from motionmillion.motion.rig_mapping import bvh_to_features

    return bvh_to_features(WALK_BVH)


def fk_error(features: np.ndarray) -> float:
    """max |decode_joints - FK(decode_rotations)| with the motion's fitted skeleton."""
    joints = decode_joints(features)
    rotations, root = decode_rotations(features)
    return float(np.abs(forward_kinematics(rotations, root, fit_offsets(joints, rotations)) - joints).max())


def handstand(features: np.ndarray) -> np.ndarray:
    """The same motion upside down: feet high in the air, never touching the floor."""
    rotations, root = decode_rotations(features)
    offsets = fit_offsets(decode_joints(features), rotations)
    rotations[:, 0] = axis_angle_to_matrix(np.array([0.0, 0.0, np.pi])) @ rotations[:, 0]
    return encode_consistent(rotations, root, offsets, canonical=True)


# ------------------------------------------------------------------------------------------------
# Contacts
# ------------------------------------------------------------------------------------------------


def test_walk_contacts_alternate(walk):
    joints = decode_joints(walk)
    contacts = foot_contacts(joints)
    assert contacts.shape == (len(walk), 4)
    left, right = contacts[:, 0] | contacts[:, 1], contacts[:, 2] | contacts[:, 3]
    assert 0.3 < left.mean() < 0.9 and 0.3 < right.mean() < 0.9
    assert (left | right).mean() > 0.95  # walking: always a foot on the floor
    assert len(contact_runs(left)) >= 2 and len(contact_runs(right)) >= 2
    metrics = contact_metrics(joints)
    assert metrics["left_toe_contact_runs"] >= 2 and abs(metrics["floor_height"]) < 0.03


def test_floor_follows_the_feet(walk):
    joints = decode_joints(walk)
    floor = detect_floor(joints)
    assert abs(detect_floor(joints + np.array([0.0, 0.37, 0.0])) - (floor + 0.37)) < 1e-9
    np.testing.assert_array_equal(foot_contacts(joints + np.array([0.0, 0.37, 0.0])), foot_contacts(joints))


def test_contact_runs():
    assert contact_runs(np.array([0, 1, 1, 0, 1], bool)) == [(1, 3), (4, 5)]
    assert contact_runs(np.zeros(4, bool)) == []


def test_no_contact_motion_detected(walk):
    assert not foot_contacts(decode_joints(handstand(walk))).any()


# ------------------------------------------------------------------------------------------------
# Pinning and IK
# ------------------------------------------------------------------------------------------------


def test_pin_offsets_pin_runs_and_ease_out():
    frames = 40
    positions = np.zeros((frames, 3))
    positions[:, 0] = np.linspace(0.0, 0.39, frames)  # a joint drifting 1 cm per frame
    contact = np.zeros(frames, bool)
    contact[10:20] = True
    offsets, weights = pin_offsets(positions, contact, blend_frames=4)
    pinned = positions + offsets
    np.testing.assert_allclose(pinned[10:20], np.broadcast_to(pinned[10], (10, 3)), atol=1e-12)  # one position for the run
    assert np.allclose(weights[10:20], 1.0) and weights[5] == 0.0 and weights[25] == 0.0
    assert not offsets[:6].any() and not offsets[25:].any()
    assert np.all(np.diff(np.abs(offsets[20:25, 0])) < 0)  # fades out monotonically
    # Two runs with a short gap: the gap eases from one pin to the other without overshoot.
    contact[22:30] = True
    offsets, _ = pin_offsets(positions, contact, blend_frames=4)
    gap = offsets[20:22, 0]
    assert offsets[19, 0] < gap[0] < gap[1] < offsets[22, 0]


def test_two_bone_ik_reaches_reachable_targets(walk):
    rotations, root = decode_rotations(walk)
    offsets = fit_offsets(decode_joints(walk), rotations)
    joints = forward_kinematics(rotations, root, offsets)
    global_rot = local_to_global(rotations)
    hip, knee, ankle, toe = LEFT_LEG
    shift = np.array([0.04, 0.02, -0.03])
    new = solve_leg(global_rot, joints, LEFT_LEG, joints[:, ankle] + shift, joints[:, toe] + shift)
    new_global = global_rot.copy()
    for j, rot in new.items():
        new_global[:, j] = rot
    new_global[:, toe] = new[ankle] @ rotations[:, toe]
    rebuilt = np.swapaxes(new_global[:, [0, 1, 4]], -1, -2) @ new_global[:, [1, 4, 7]]  # locals of hip, knee, ankle
    new_rotations = rotations.copy()
    new_rotations[:, [hip, knee, ankle]] = rebuilt
    moved = forward_kinematics(new_rotations, root, offsets)
    reachable = np.linalg.norm(joints[:, ankle] + shift - joints[:, hip], axis=-1) < 0.99 * (
        np.linalg.norm(offsets[knee]) + np.linalg.norm(offsets[ankle])
    )
    assert reachable.mean() > 0.5
    np.testing.assert_allclose(moved[reachable, ankle], joints[reachable, ankle] + shift, atol=1e-9)
    np.testing.assert_allclose(moved[reachable, toe], joints[reachable, toe] + shift, atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(new_rotations), 1.0, atol=1e-9)


# ------------------------------------------------------------------------------------------------
# Sliding removal
# ------------------------------------------------------------------------------------------------


def test_fix_removes_injected_sliding_and_keeps_the_body(walk):
    sliding = inject_sliding(walk, seed=1)
    before = foot_skating(decode_joints(sliding), 30.0)
    assert before > foot_skating(decode_joints(walk), 30.0) + 0.03  # the injection does slide
    fixed = fix_foot_sliding(sliding)
    assert fixed.shape == walk.shape and fixed.dtype == sliding.dtype
    after = foot_skating(decode_joints(fixed), 30.0)
    assert after < 0.3 * before
    free = leg_free_joints()
    # Sliding that comes from the legs is fixed by the legs: the hips' sway changes direction, so it
    # is not taken for a glide and the rest of the body does not move.
    np.testing.assert_allclose(decode_joints(fixed)[:, free], decode_joints(sliding)[:, free], atol=1e-6)
    assert fk_error(fixed) < 1e-5
    # Frame-0 placement (heading, pelvis position) is unchanged.
    np.testing.assert_allclose(fixed[0, 2:11], sliding[0, 2:11], atol=1e-9)
    # Only hip, knee and ankle rotations changed.
    rot_in, _ = decode_rotations(sliding)
    rot_out, _ = decode_rotations(fixed)
    changed = np.abs(rot_out - rot_in).max(axis=(0, 2, 3)) > 1e-9
    assert set(np.flatnonzero(changed)) <= {1, 2, 4, 5, 7, 8}


BYE_BVH = WALK_BVH.with_name("dataset-1_bye_normal_001.bvh")


@pytest.mark.parametrize("speed", [0.05, 0.1])
def test_fix_removes_a_whole_body_glide_by_moving_the_root(speed):
    """A body drifting over planted feet: the root goes back, the feet stop, the pose is kept."""
    from motionmillion.motion.rig_mapping import bvh_to_features

    clean = bvh_to_features(BYE_BVH)  # standing and waving: feet planted throughout
    gliding = inject_glide(clean, speed=speed, seed=3)
    before = foot_skating(decode_joints(gliding), 30.0)
    assert before > foot_skating(decode_joints(clean), 30.0) + 0.8 * speed
    fixed = fix_foot_sliding(gliding)
    out, ref, truth = decode_joints(fixed), decode_joints(gliding), decode_joints(clean)
    assert foot_skating(out, 30.0) < 0.2 * before
    # The body is brought back towards where the clean clip stands; leg IK alone leaves it gliding.
    leg_ik_only = decode_joints(fix_foot_sliding(gliding, config=SlidingConfig(glide_seconds=0)))
    error = np.linalg.norm(out - truth, axis=-1).mean()
    assert error < 0.5 * np.linalg.norm(leg_ik_only - truth, axis=-1).mean()
    # Everything but the legs keeps its pose relative to the pelvis, and the pelvis its height.
    free = leg_free_joints()
    np.testing.assert_allclose(out[:, free] - out[:, :1], ref[:, free] - ref[:, :1], atol=1e-6)
    np.testing.assert_allclose(out[:, 0, 1], ref[:, 0, 1], atol=1e-9)


def test_clean_walk_is_not_moved_by_glide_removal(walk):
    """Real capture creeps a little on planted feet; that alone must not move the body."""
    shift = decode_joints(fix_foot_sliding(walk))[:, 0] - decode_joints(walk)[:, 0]
    assert np.abs(shift).max() < 0.01  # its creep (~4 cm/s at most) is left to the leg IK


def test_fix_on_a_motion_whose_rotations_disagree_with_its_positions(walk, rng):
    """Generated motions: rotations a little off their positions, frame 0 not exactly canonical. The
    clean-up makes them consistent without moving the body as a whole (no re-canonicalising turn)."""
    stored = sixd_to_matrix(walk[:, 140:].reshape(len(walk), 22, 6))
    stored[:, 0] = yaw_matrix(0.03) @ stored[:, 0]  # a 1.7 degree root heading residual
    stored[:, 1:] = axis_angle_to_matrix(rng.normal(scale=0.02, size=(len(walk), 21, 3))) @ stored[:, 1:]
    generated = walk.copy()
    generated[:, 140:] = matrix_to_6d(stored).reshape(len(walk), -1)
    generated[0, 0:2] = [0.02, -0.01]  # frame 0 pelvis off the origin
    fixed = fix_foot_sliding(generated)
    assert fk_error(fixed) < 1e-5
    free = leg_free_joints()
    out, ref = decode_joints(fixed), decode_joints(generated)
    change = np.linalg.norm((out[:, free] - out[:, :1]) - (ref[:, free] - ref[:, :1]), axis=-1)
    assert change.mean() < 0.002  # the rotations were turned onto the positions
    assert np.abs(out[:, 0] - ref[:, 0]).max() < 0.01  # no re-canonicalising turn or shift


def test_fix_keeps_float32(walk):
    fixed = fix_foot_sliding(walk.astype(np.float32))
    assert fixed.dtype == np.float32


def test_fixed_motion_round_trips_through_bvh(walk, tmp_path):
    from motionmillion.motion.bvh import write_bvh
    from motionmillion.motion.rig_mapping import load_bvh_joints

    fixed = fix_foot_sliding(inject_sliding(walk, seed=2))
    write_bvh(tmp_path / "fixed.bvh", fixed, fps=30.0)
    joints, _ = load_bvh_joints(tmp_path / "fixed.bvh", rig="smpl", unit_scale=1.0)
    assert np.abs(joints - decode_joints(fixed)).max() < 1e-3


def test_no_contact_motion_returned_unchanged(walk):
    upside_down = handstand(walk)
    assert decode_joints(upside_down)[:, [7, 8, 10, 11], 1].min() > 0.5
    with pytest.warns(PostprocessWarning, match="no foot contact"):
        out = fix_foot_sliding(upside_down, source="handstand")
    np.testing.assert_array_equal(out, upside_down)


@pytest.mark.parametrize("frames", [1, 2, MIN_FRAMES - 1])
def test_short_motion_returned_unchanged(walk, frames):
    short = walk[:frames]
    with pytest.warns(PostprocessWarning, match="frames"):
        out = fix_foot_sliding(short)
    np.testing.assert_array_equal(out, short)


def test_short_but_long_enough_motion_stays_valid(walk):
    out = fix_foot_sliding(inject_sliding(walk[:MIN_FRAMES]))
    assert np.isfinite(out).all() and fk_error(out) < 1e-5


def test_nan_and_bad_shape_raise(walk):
    bad = walk.copy()
    bad[3, 100] = np.nan
    with pytest.raises(InvalidMotionError, match="clip.npy.*NaN"):
        fix_foot_sliding(bad, source="clip.npy")
    with pytest.raises(InvalidMotionError, match="272"):
        fix_foot_sliding(walk[:, :263])


# ------------------------------------------------------------------------------------------------
# Smoothing and floor
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "polyorder", "message"),
    [(3, 3, "too small"), (3, 2, "too small"), (4, 2, "odd"), (1, 0, "too small"), (0, 2, "odd"),
     (-5, 2, "too small"), (5.0, 2, "integer"), (True, 2, "integer"), (7, -1, "polyorder")],
)  # fmt: skip
def test_bad_windows_are_rejected_clearly(window, polyorder, message):
    with pytest.raises(SmoothingWindowError, match=message):
        check_window(window, polyorder)
    with pytest.raises(SmoothingWindowError):
        PostprocessConfig(window=window, polyorder=polyorder)


@pytest.mark.parametrize(("window", "polyorder"), [(5, 2), (5, 3), (3, 0), (3, 1), (31, 2), (9, 4)])
def test_good_windows_are_accepted(window, polyorder):
    check_window(window, polyorder)


def test_smoothing_reduces_jitter_and_stays_consistent(walk, rng):
    rotations, root = decode_rotations(walk)
    offsets = fit_offsets(decode_joints(walk), rotations)
    noise = axis_angle_to_matrix(rng.normal(scale=0.03, size=rotations.shape[:2] + (3,)))
    noisy = encode_consistent(noise @ rotations, root, offsets)

    def jerk(f):
        return np.abs(np.diff(decode_joints(f), n=3, axis=0)).mean()

    smoothed = smooth_motion(noisy, window=9)
    assert jerk(smoothed) < 0.5 * jerk(noisy)
    assert fk_error(smoothed) < 1e-5
    rot_out, _ = decode_rotations(smoothed)
    np.testing.assert_allclose(rot_out @ np.swapaxes(rot_out, -1, -2), np.broadcast_to(np.eye(3), rot_out.shape), atol=1e-9)


def test_smoothing_window_longer_than_motion_warns(walk):
    with pytest.warns(PostprocessWarning, match="shorter than the smoothing window"):
        out = smooth_motion(walk[:7], window=9)
    np.testing.assert_array_equal(out, walk[:7])


def test_align_floor_moves_detected_floor_to_zero(walk):
    joints = decode_joints(walk)
    raised = encode_272(joints, decode_rotations(walk)[0])
    raised[:, 9:74:3] += 0.25  # the whole motion floats 25 cm
    aligned = align_floor(raised)
    assert abs(detect_floor(decode_joints(aligned))) < 1e-9
    np.testing.assert_allclose(aligned[:, 74:], raised[:, 74:])
    assert fk_error(aligned) < 1e-5


def test_pipeline_runs_all_steps(walk):
    config = PostprocessConfig(window=7, align_floor=True)
    out = postprocess_features(inject_sliding(walk), config)
    assert out.shape == walk.shape and fk_error(out) < 1e-5


# ------------------------------------------------------------------------------------------------
# CLI
# ------------------------------------------------------------------------------------------------


def invoke(args: list[str]):
    app = typer.Typer()
    app.command()(postprocess_command)
    result = CliRunner().invoke(app, [str(a) for a in args], env={"COLUMNS": "400"})
    result.text = " ".join(result.output.replace("│", " ").split())  # rich boxes wrap long paths
    return result


def test_cli_folder_with_bad_file(walk, tmp_path):
    source = tmp_path / "in"
    (source / "sub").mkdir(parents=True)
    np.save(source / "good.npy", inject_sliding(walk).astype(np.float32))
    np.save(source / "sub" / "short.npy", walk[:3])
    bad = walk.copy()
    bad[0, 0] = np.nan
    np.save(source / "sub" / "bad.npy", bad)
    (source / "sub" / "clip.bvh").write_text(WALK_BVH.read_text())
    (source / "notes.txt").write_text("ignored")
    out = tmp_path / "out"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = invoke([source, "--out", out, "--window", "5"])
    assert result.exit_code == 1, result.output
    assert "bad.npy" in result.text and "NaN" in result.text and "1 file(s) skipped" in result.text
    assert "3 frames" in result.text  # the short clip is reported as left unchanged
    good = np.load(out / "good.npy")
    assert good.dtype == np.float32 and good.shape == walk.shape
    assert np.array_equal(np.load(out / "sub" / "short.npy"), walk[:3])  # too short: copied unchanged
    assert (out / "sub" / "clip.bvh").read_text().startswith("HIERARCHY")
    assert not (out / "sub" / "bad.npy").exists()


def test_cli_single_file_to_bvh_and_bad_window(walk, tmp_path):
    np.save(tmp_path / "motion.npy", walk)
    result = invoke([tmp_path / "motion.npy", "--out", tmp_path / "motion.bvh"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "motion.bvh").exists()
    result = invoke([tmp_path / "motion.npy", "--out", tmp_path / "x.npy", "--window", "4"])
    assert result.exit_code == 2 and "must be odd" in result.text
    result = invoke([tmp_path / "missing.npy", "--out", tmp_path / "x.npy"])
    assert result.exit_code == 2 and "no such file" in result.text
