"""One rigid skeleton behind every output: make_consistent, disagreement, skeleton files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from motionmillion.motion import decode_joints, decode_rotations, forward_kinematics
from motionmillion.motion.bvh import write_bvh
from motionmillion.motion.rig_mapping import bvh_to_features, load_bvh_joints
from motionmillion.motion.consistency import (
    bone_length_std,
    disagreement,
    fit_skeleton,
    make_consistent,
    typical_skeleton,
)
from motionmillion.motion.representation import POSITIONS
from motionmillion.motion.skeleton import NUM_JOINTS, SkeletonFileError, bone_lengths, load_skeleton, save_skeleton

WALK_BVH = (
    Path(__file__).parents[1]
    / "fixtures/bvh/bandai/Bandai-Namco-Research-Motiondataset-1/data/dataset-1_walk_normal_001.bvh"
)
RIGHT_ELBOW, RIGHT_WRIST = 19, 21


@pytest.fixture(scope="module")
def walk() -> np.ndarray:
    return bvh_to_features(WALK_BVH)


def like_generated(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """A real clip whose position part no longer agrees with its rotations, as a decoded motion:
    the right forearm shrinks by up to 40% and every joint jitters by ~1 cm."""
    rng = np.random.default_rng(seed)
    out = features.copy()
    local = out[:, POSITIONS].reshape(len(out), NUM_JOINTS, 3)
    shrink = 0.4 * np.sin(np.linspace(0.0, np.pi, len(out)))[:, None]
    local[:, RIGHT_WRIST] -= shrink * (local[:, RIGHT_WRIST] - local[:, RIGHT_ELBOW])
    local[:, 1:] += rng.normal(scale=0.01, size=local[:, 1:].shape)
    out[:, POSITIONS] = local.reshape(len(out), -1)
    return out


def test_real_clips_are_consistent_and_stay_as_they_are(walk):
    report = disagreement(walk)
    assert report.consistent and report.position_max_m < 1e-6 and report.bone_length_std_max_m < 1e-6
    np.testing.assert_allclose(make_consistent(walk), walk, atol=1e-6)
    # On the clip's own skeleton the round trip is exact too.
    np.testing.assert_allclose(make_consistent(walk, fit_skeleton(walk)), walk, atol=1e-6)


def test_disagreement_measures_a_generated_like_motion(walk):
    report = disagreement(like_generated(walk))
    assert not report.consistent
    assert report.position_max_m > 0.02 and report.bone_length_std_max_m > 0.02  # the forearm shrinks
    assert report.bone_angle_max_deg > 5.0
    assert "disagree by up to" in str(report)


def test_make_consistent_poses_every_output_on_one_rigid_skeleton(walk, tmp_path):
    skeleton = fit_skeleton(walk) * 1.05  # a training skeleton that is not the clip's own
    raw = like_generated(walk)
    out = make_consistent(raw, skeleton)
    joints = decode_joints(out)
    rotations, root = decode_rotations(out)
    # Joints are forward kinematics of the rotations on exactly that skeleton: rigid bones.
    np.testing.assert_allclose(joints, forward_kinematics(rotations, root, skeleton), atol=1e-9)
    assert bone_length_std(joints).max() < 1e-9
    np.testing.assert_allclose(np.linalg.norm(joints[:, RIGHT_WRIST] - joints[:, RIGHT_ELBOW], axis=-1),
                               bone_lengths(skeleton)[RIGHT_WRIST - 1], atol=1e-9)  # fmt: skip
    # World placement is kept (non-canonical re-encoding): same root trajectory as the input.
    np.testing.assert_allclose(root, decode_rotations(raw)[1], atol=1e-9)
    # The BVH, read back by the project's reader, is the same motion as Motion.joints (float32 file).
    path = write_bvh(tmp_path / "m.bvh", out.astype(np.float32))
    read, _ = load_bvh_joints(path, rig="smpl", unit_scale=1.0)
    assert np.abs(read - decode_joints(out.astype(np.float32))).max() < 1e-3
    # The rotations were turned towards the decoded positions: closer than the raw rotations would be.
    raw_rot, raw_root = decode_rotations(raw)
    error_raw = np.linalg.norm(forward_kinematics(raw_rot, raw_root, skeleton) - decode_joints(raw), axis=-1).mean()
    assert np.linalg.norm(joints - decode_joints(raw), axis=-1).mean() < error_raw


def test_skeleton_file_round_trip_and_errors(walk, tmp_path):
    skeleton = typical_skeleton([walk, walk[:40]])
    np.testing.assert_allclose(skeleton, fit_skeleton(walk), atol=1e-9)  # one actor: the same bones
    path = save_skeleton(tmp_path / "skeleton.json", skeleton, source="test", clips=2)
    np.testing.assert_allclose(load_skeleton(path), skeleton, atol=1e-6)
    assert json.loads(path.read_text())["clips"] == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"offsets": {"pelvis": [0, 0, 0]}}')
    with pytest.raises(SkeletonFileError, match="bad.json"):
        load_skeleton(bad)
    with pytest.raises(ValueError, match="no clips"):
        typical_skeleton([])


def test_generated_motions_are_one_motion_in_every_output(tmp_path):
    """The bundled pipeline: features, joints, BVH and the skeleton it ships agree to < 1 mm."""
    from motionmillion import MotionPipeline

    pipe = MotionPipeline.from_pretrained()
    motion = pipe("a person waves with the right hand", seconds=3.0, seed=0)[0]
    assert disagreement(motion.features).position_max_m < 1e-3
    assert bone_length_std(motion.joints).max() < 1e-3
    if pipe.skeleton is not None:
        np.testing.assert_allclose(fit_skeleton(motion.features), pipe.skeleton, atol=1e-3)
    read, _ = load_bvh_joints(motion.to_bvh(tmp_path / "wave.bvh"), rig="smpl", unit_scale=1.0)
    assert np.abs(read - motion.joints).max() < 1e-3


def test_writing_an_inconsistent_file_logs_the_disagreement(walk, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        write_bvh(tmp_path / "own.bvh", like_generated(walk))
    assert "disagree by up to" in caplog.text and "own.bvh" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        write_bvh(tmp_path / "real.bvh", walk)
    assert "disagree" not in caplog.text



def test_dataset_skeleton_is_the_rig_most_clips_share(walk, tmp_path):
    from motionmillion.data.layout import write_clip
    from motionmillion.data.stats import dataset_skeleton

    own = fit_skeleton(walk)
    write_clip(tmp_path, "a/walk", walk, ["a person walks"])
    write_clip(tmp_path, "a/walk_again", walk[20:], ["a person walks"])
    write_clip(tmp_path, "b/taller", make_consistent(walk[:50], own * 1.3), ["a person walks"])  # another rig
    offsets, clips = dataset_skeleton(tmp_path)  # no split files yet: every stored clip
    assert clips == 3
    np.testing.assert_allclose(offsets, own, atol=1e-6)


def test_a_damaged_skeleton_file_is_a_clear_pipeline_error(tmp_path):
    import shutil

    from motionmillion.pipeline import MotionPipeline, PipelineError, default_model_path

    folder = shutil.copytree(default_model_path(), tmp_path / "model")
    (folder / "skeleton.json").write_text("{not json")
    with pytest.raises(PipelineError, match="skeleton.json"):
        MotionPipeline.from_pretrained(folder)
