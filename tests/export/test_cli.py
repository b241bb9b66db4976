"""``motionmillion export`` through the real command line (one-line errors, exit codes)."""

from __future__ import annotations

import numpy as np
import pygltflib
from export_readers import REAL_CLIPS
from typer.testing import CliRunner

from motionmillion.cli import app
from motionmillion.motion import decode_joints
from motionmillion.motion.bvh import read_bvh
from motionmillion.motion.rig_mapping import load_bvh_joints

WALK = REAL_CLIPS["bandai_walk"][0]


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_gltf_and_every_rig(tmp_path):
    out = [tmp_path / "walk.glb", tmp_path / "walk_mixamo.bvh"]
    result = invoke("export", WALK, "--gltf", out[0], "--bvh", out[1], "--rig", "mixamo")
    assert result.exit_code == 0, result.output
    assert "mixamo rig" in result.output
    assert len(pygltflib.GLTF2().load(str(out[0])).animations) == 1
    assert read_bvh(out[1]).names[0] == "mixamorig:Hips"
    for rig, root in (("bandai", "joint_Root"), ("cmu", "hip"), ("smpl", "pelvis")):
        result = invoke("export", WALK, "--bvh", tmp_path / f"{rig}.bvh", "--rig", rig)
        assert result.exit_code == 0, result.output
        assert read_bvh(tmp_path / f"{rig}.bvh").names[0] == root


def test_list_rigs():
    result = invoke("export", "--list-rigs")
    assert result.exit_code == 0
    assert [line.split()[0] for line in result.output.splitlines()] == ["smpl", "bandai", "cmu-daz", "mixamo"]


def test_bad_input_is_one_line_naming_the_problem(tmp_path):
    result = invoke("export", WALK, "--bvh", tmp_path / "x.bvh", "--rig", "unreal")
    assert result.exit_code == 2
    assert result.output.strip() == "error: unknown rig 'unreal' (known: smpl, bandai, cmu-daz, mixamo)"
    motion = np.zeros((12, 272))
    motion[[2, 3, 9]] = np.nan
    np.save(tmp_path / "holes.npy", motion)
    result = invoke("export", tmp_path / "holes.npy", "--gltf", tmp_path / "x.glb")
    assert result.exit_code == 2
    assert "holes.npy" in result.output and "3 frame(s): 2, 3, 9" in result.output
    result = invoke("export", WALK, "--bvh", tmp_path / "x.bvh", "--rig", "mixamo", "--unit-scale", "100")
    assert result.exit_code == 2 and "--unit-scale applies to --rig smpl only" in result.output
    result = invoke("export", WALK)
    assert result.exit_code == 2 and "at least one of --gltf" in result.output
    np.save(tmp_path / "dots.npy", np.zeros((5, 22, 3)))  # every joint at one point: no skeleton
    for args in (["--gltf", tmp_path / "x.glb"], ["--bvh", tmp_path / "x.bvh", "--rig", "mixamo"]):
        result = invoke("export", tmp_path / "dots.npy", *args)
        assert result.exit_code == 2, result.output
        assert "dots.npy: the pelvis-left_hip bone is 0.0 mm long" in result.output
    assert not list(tmp_path.glob("x.*"))


def test_bvh_joints_features_round_trip(tmp_path):
    out_bvh, out_joints, out_feats = tmp_path / "walk.bvh", tmp_path / "walk_joints.npy", tmp_path / "walk.npy"
    result = invoke("export", WALK, "--bvh", out_bvh, "--joints", out_joints, "--features", out_feats)
    assert result.exit_code == 0, result.output
    joints = np.load(out_joints)
    assert joints.shape == (100, 22, 3)
    assert np.abs(load_bvh_joints(out_bvh, rig="smpl", unit_scale=1.0)[0] - joints).max() < 1e-3
    assert np.abs(decode_joints(np.load(out_feats).astype(np.float64)) - joints).max() < 1e-3
    # From joints only (T, 22, 3): rotations are recovered from positions, the placement is kept.
    shifted = joints + np.array([1.0, 0.0, -2.0], np.float32)
    np.save(tmp_path / "shifted.npy", shifted)
    result = invoke("export", tmp_path / "shifted.npy", "--bvh", tmp_path / "from_joints.bvh")
    assert result.exit_code == 0, result.output
    back = load_bvh_joints(tmp_path / "from_joints.bvh", rig="smpl", unit_scale=1.0)[0]
    assert np.abs(back - shifted).max() < 1e-3
