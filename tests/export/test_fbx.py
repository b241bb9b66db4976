"""FBX export (Blender run headless), read back by two independent readers: Blender's own FBX importer and
ufbx (the C library, from PyPI). Joint world positions must equal the motion's within 1 mm, frame count
and rate exactly; the file holds one skinned mesh, one take, centimetres, Y up, the body facing +Z."""

from __future__ import annotations

import numpy as np
import pytest
from export_measure import read_positions_project
from export_readers import REAL_CLIPS, needs_blender, read_fbx_blender, read_fbx_ufbx
from typer.testing import CliRunner

from motionmillion.cli import app
from motionmillion.export.fbx import BLENDER_ENV, BlenderMissingError, write_fbx
from motionmillion.export.retarget import load_rig_template
from motionmillion.motion import JOINT_NAMES, Motion
from motionmillion.motion.kinematics import forward_kinematics

REAL = list(REAL_CLIPS)
GENERATED = ["generated_0", "generated_1", "generated_2", "generated_3"]
MM = 1e-3


@pytest.fixture(scope="module")
def fbx_files(tmp_path_factory, real_motions, generated_motions, more_generated_motions) -> dict[str, tuple[Motion, object]]:
    folder = tmp_path_factory.mktemp("fbx")
    motions = {**real_motions, **generated_motions, **more_generated_motions}
    return {name: (motion, motion.to_fbx(folder / f"{name}.fbx")) for name, motion in motions.items()}


@pytest.fixture(scope="module")
def blender_reads(fbx_files) -> dict[str, dict]:
    names = list(fbx_files)
    return dict(zip(names, read_fbx_blender([fbx_files[n][1] for n in names])))


def _expected(motion: Motion, name: str) -> np.ndarray:
    # Real clips and the pipeline's motions are consistent: their joints are the rigid skeleton's. A raw
    # decoded motion is not; every export (BVH, glTF, FBX) plays it on its fitted rigid skeleton.
    return motion.rigid_pose()[3] if name == "generated_raw_0" else motion.joints


@needs_blender
@pytest.mark.parametrize("name", REAL + GENERATED + ["generated_raw_0"])
def test_blender_importer_reads_the_motion_joints(fbx_files, blender_reads, name):
    motion, _ = fbx_files[name]
    read = blender_reads[name]
    assert read["frames"] == motion.num_frames and read["fps"] == motion.fps
    positions = read["positions"][:, [read["names"].index(n) for n in JOINT_NAMES]]
    assert np.abs(positions - _expected(motion, name)).max() < MM
    assert read["skinned_meshes"] == ["mannequin"] and read["vertices"] > 1000
    assert len(read["actions"]) == 1


@needs_blender
@pytest.mark.parametrize("name", REAL + GENERATED + ["generated_raw_0"])
def test_ufbx_reads_the_motion_joints(fbx_files, name):
    pytest.importorskip("ufbx", reason="ufbx is not installed (pip install ufbx; the dev extra has it)")
    motion, path = fbx_files[name]
    read = read_fbx_ufbx(path, list(JOINT_NAMES))
    assert read["frames"] == motion.num_frames and read["fps"] == motion.fps and read["takes"] == 1
    assert np.abs(read["positions"] - _expected(motion, name)).max() < MM
    assert (read["unit_metres"], read["up"], read["front"]) == (0.01, "POSITIVE_Y", "POSITIVE_Z")
    assert read["meshes"] == 1 and read["skin_clusters"] == len(JOINT_NAMES)


@needs_blender
def test_rest_pose_is_the_t_pose_of_the_motions_skeleton(fbx_files, blender_reads):
    """The armature's rest pose is every rotation the identity on the motion's rigid skeleton (the SMPL
    T-pose: arms out sideways, legs straight down), the pelvis where the motion starts."""
    motion, _ = fbx_files["bandai_walk"]
    rest = np.array([blender_reads["bandai_walk"]["rest"][name] for name in JOINT_NAMES])
    _, root, offsets, _ = motion.rigid_pose()
    expected = forward_kinematics(np.tile(np.eye(3), (1, len(JOINT_NAMES), 1, 1)), root[:1], offsets)[0]
    assert np.abs(rest - expected).max() < MM

    def degrees(a: str, b: str, axis: tuple[float, float, float]) -> float:
        bone = rest[JOINT_NAMES.index(b)] - rest[JOINT_NAMES.index(a)]
        return float(np.degrees(np.arccos(np.dot(bone, axis) / np.linalg.norm(bone))))

    for side, sign in (("left", 1.0), ("right", -1.0)):  # the body's left is +X
        assert degrees(f"{side}_shoulder", f"{side}_wrist", (sign, 0.0, 0.0)) < 10
        assert degrees(f"{side}_hip", f"{side}_ankle", (0.0, -1.0, 0.0)) < 10


@needs_blender
@pytest.mark.parametrize("rig", ["mixamo", "bandai", "cmu-daz"])
def test_rig_fbx_plays_the_rig_bvh(more_generated_motions, rig, tmp_path):
    """On a rig the FBX is the same movement as that rig's BVH (whose bone directions and feet
    tests/export/test_rigs.py measures): every joint within 1 mm, rig names kept."""
    pytest.importorskip("ufbx", reason="ufbx is not installed (pip install ufbx; the dev extra has it)")
    motion = more_generated_motions["generated_2"]
    path = write_fbx(motion, tmp_path / f"{rig}.fbx", rig=rig)
    names, bvh_positions = read_positions_project(motion.to_bvh(tmp_path / f"{rig}.bvh", rig=rig))
    read = read_fbx_ufbx(path, names)
    assert read["frames"] == motion.num_frames
    assert np.abs(read["positions"] - bvh_positions / load_rig_template(rig).units_per_metre).max() < MM


def test_missing_blender_is_one_line_naming_what_to_install(generated_motions, tmp_path, monkeypatch):
    monkeypatch.setenv(BLENDER_ENV, str(tmp_path / "no-blender"))
    with pytest.raises(BlenderMissingError, match=r"apt-get install blender"):
        generated_motions["generated_0"].to_fbx(tmp_path / "m.fbx")
    assert not (tmp_path / "m.fbx").exists()


def test_export_without_blender_exits_with_the_install_line(tmp_path, monkeypatch):
    monkeypatch.setenv(BLENDER_ENV, str(tmp_path / "no-blender"))
    clip = str(REAL_CLIPS["bandai_walk"][0])
    result = CliRunner().invoke(app, ["export", clip, "--fbx", str(tmp_path / "w.fbx")])
    assert result.exit_code == 1 and "apt-get install blender" in result.output
    assert len(result.output.strip().splitlines()) == 1 and not (tmp_path / "w.fbx").exists()


def test_wrong_suffix_is_refused(generated_motions, tmp_path):
    with pytest.raises(ValueError, match=r"m\.glb: an FBX export needs a \.fbx file name"):
        write_fbx(generated_motions["generated_0"], tmp_path / "m.glb")


@needs_blender
def test_export_and_save_write_fbx(tmp_path, generated_motions):
    clip = str(REAL_CLIPS["bandai_walk"][0])
    result = CliRunner().invoke(app, ["export", clip, "--fbx", str(tmp_path / "w.fbx"), "--rig", "mixamo"])
    assert result.exit_code == 0, result.output
    assert "mixamo rig" in result.output
    assert (tmp_path / "w.fbx").read_bytes().startswith(b"Kaydara FBX Binary")
    files = generated_motions["generated_0"].save(tmp_path, "wave", video=False, fbx=True)
    assert files["fbx"] == tmp_path / "wave.fbx" and files["fbx"].is_file()
