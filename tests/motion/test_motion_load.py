"""Motion.load: the one reader of motion files (272 .npy, joints .npy, BVH of any known rig)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from motionmillion.motion import Motion, MotionFileError, decode_joints
from motionmillion.motion.bvh import BVHError
from motionmillion.motion.rig_mapping import bvh_to_features

WALK = Path(__file__).parent.parent / "fixtures/bvh/bandai/Bandai-Namco-Research-Motiondataset-1/data/dataset-1_walk_normal_001.bvh"


def test_reads_features_joints_and_bvh(tmp_path):
    features = bvh_to_features(WALK)
    from_bvh = Motion.load(WALK, text="walk")
    np.testing.assert_allclose(from_bvh.features, features)
    assert from_bvh.fps == 30.0 and from_bvh.text == "walk"
    np.save(tmp_path / "f.npy", features.astype(np.float32))
    assert Motion.load(tmp_path / "f.npy", fps=20).fps == 20.0
    # Joint positions keep their world placement (no turn to face +Z, no move to the origin).
    joints = decode_joints(features) + np.array([2.0, 0.0, 3.0])
    np.save(tmp_path / "j.npy", joints)
    np.testing.assert_allclose(Motion.load(tmp_path / "j.npy").joints, joints, atol=1e-9)


@pytest.mark.parametrize(
    "array, message",
    [
        (np.zeros((10, 271)), r"expected \(T, 272\) features or \(T, 22, 3\) joints, got shape \(10, 271\)"),
        (np.zeros((0, 22, 3)), "zero frames"),
        (np.zeros((0, 272)), "zero frames"),
    ],
)
def test_bad_arrays_name_the_file(tmp_path, array, message):
    np.save(tmp_path / "bad.npy", array)
    with pytest.raises(ValueError, match=message) as info:
        Motion.load(tmp_path / "bad.npy")
    assert str(info.value).startswith(str(tmp_path / "bad.npy"))


def test_nan_frames_are_listed_by_number(tmp_path):
    features = bvh_to_features(WALK)
    features[[4, 17]] = np.nan
    np.save(tmp_path / "f.npy", features)
    with pytest.raises(ValueError, match=r"f\.npy: .* in 2 frame\(s\): 4, 17$"):
        Motion.load(tmp_path / "f.npy")
    joints = decode_joints(bvh_to_features(WALK))
    joints[range(10, 30), 3] = np.inf
    np.save(tmp_path / "j.npy", joints)
    with pytest.raises(MotionFileError, match=r"j\.npy: NaN/infinite joint positions in 20 frame\(s\): 10, 11, .*, 17, \.\.\.$"):
        Motion.load(tmp_path / "j.npy")


def test_missing_wrong_suffix_and_broken_files(tmp_path):
    with pytest.raises(MotionFileError, match="nothing.npy: no such file"):
        Motion.load(tmp_path / "nothing.npy")
    (tmp_path / "m.txt").write_text("1 2 3")
    with pytest.raises(MotionFileError, match="unsupported motion file"):
        Motion.load(tmp_path / "m.txt")
    (tmp_path / "m.npy").write_bytes(b"not numpy")
    with pytest.raises(MotionFileError, match="not a readable .npy file"):
        Motion.load(tmp_path / "m.npy")
    (tmp_path / "m.bvh").write_text("HIERARCHY\n")
    with pytest.raises(BVHError, match="m.bvh: no MOTION section"):
        Motion.load(tmp_path / "m.bvh")
    with pytest.raises(MotionFileError, match="fps must be positive"):
        Motion.load(WALK, fps=0)
