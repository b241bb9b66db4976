"""glTF export, read by independent readers: the Khronos validator and three.js's GLTFLoader (Node)."""

from __future__ import annotations

import numpy as np
import pygltflib
import pytest
from export_readers import needs_node, run_node

from motionmillion.motion import JOINT_NAMES, Motion
from motionmillion.motion.bvh import read_bvh, world_transforms


@pytest.fixture(scope="module")
def glb_files(tmp_path_factory, real_motions, generated_motions) -> dict[str, tuple[Motion, str]]:
    folder = tmp_path_factory.mktemp("glb")
    motions = {**real_motions, **generated_motions}
    return {name: (motion, str(motion.to_gltf(folder / f"{name}.glb"))) for name, motion in motions.items()}


@needs_node
def test_khronos_validator_finds_no_errors_or_warnings(glb_files):
    reports = run_node("validate.mjs", *(path for _, path in glb_files.values()))
    assert len(reports) == len(glb_files)
    for report in reports:
        assert report["errors"] == 0 and report["warnings"] == 0, report["messages"]


def _threejs_joints(path: str) -> dict:
    (out,) = run_node("joints.mjs", path, ",".join(JOINT_NAMES))
    return out


@needs_node
@pytest.mark.parametrize("name", ["bandai_walk", "bandai_wave_left", "cmu_salsa", "cmu_martial"])
def test_threejs_plays_real_clips_on_motion_joints(glb_files, name):
    """Joint world positions after three.js applies the animation equal Motion.joints (< 1 mm)."""
    motion, path = glb_files[name]
    out = _threejs_joints(path)
    positions = np.array(out["positions"])
    assert out["skinned"] and positions.shape == (motion.num_frames, 22, 3)
    np.testing.assert_allclose(out["times"], np.arange(motion.num_frames) / motion.fps, atol=1e-5)
    assert np.abs(positions - motion.joints).max() < 1e-3


@needs_node
@pytest.mark.parametrize("name", ["generated_0", "generated_1", "generated_raw_0"])
def test_threejs_plays_generated_motions_on_their_bvh_skeleton(glb_files, name, tmp_path):
    """A raw decoded motion's rotations disagree with its positions; the glTF, like the BVH, plays its
    rotations on its fitted skeleton, so three.js and the BVH must agree on that (< 1 mm)."""
    motion, path = glb_files[name]
    positions = np.array(_threejs_joints(path)["positions"])
    bvh = read_bvh(motion.to_bvh(tmp_path / "own.bvh"))
    bvh_positions = world_transforms(bvh)[0][:, [bvh.names.index(n) for n in JOINT_NAMES]]
    assert np.abs(positions - bvh_positions).max() < 1e-3
    assert np.abs(positions - motion.rigid_pose()[3]).max() < 1e-3


def test_document_holds_one_skinned_character_and_one_animation(glb_files):
    motion, path = glb_files["bandai_walk"]
    gltf = pygltflib.GLTF2().load(path)
    names = [node.name for node in gltf.nodes]
    assert names[:22] == list(JOINT_NAMES) and names[22] == "mannequin"
    (skin,) = gltf.skins
    assert skin.joints == list(range(22)) and gltf.nodes[22].skin == 0 and gltf.nodes[22].mesh == 0
    (animation,) = gltf.animations
    paths = sorted((c.target.node, c.target.path) for c in animation.channels)
    assert paths == sorted([(j, "rotation") for j in range(22)] + [(0, "translation")])
    times = gltf.accessors[animation.samplers[0].input]
    assert times.count == motion.num_frames
    assert times.max[0] == pytest.approx((motion.num_frames - 1) / motion.fps, abs=1e-6)
    # Every vertex is bound (weights sum to 1) and the mesh spans a person's height.
    primitive = gltf.meshes[0].primitives[0]
    blob = gltf.binary_blob()

    def read(index: int, dtype, width: int) -> np.ndarray:
        accessor = gltf.accessors[index]
        view = gltf.bufferViews[accessor.bufferView]
        return np.frombuffer(blob, dtype, accessor.count * width, view.byteOffset).reshape(accessor.count, width)

    weights = read(primitive.attributes.WEIGHTS_0, np.float32, 4)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0)
    vertices = read(primitive.attributes.POSITION, np.float32, 3)
    assert 1.5 < np.ptp(vertices[:, 1]) < 2.1 and np.ptp(vertices[:, 0]) > 1.2  # a T-pose, arms out
    assert np.abs(read(primitive.attributes.NORMAL, np.float32, 3)).max() <= 1.0 + 1e-6


def test_gltf_needs_a_glb_name(real_motions, tmp_path):
    with pytest.raises(ValueError, match=r"walk\.gltf: .*\.glb"):
        real_motions["bandai_walk"].to_gltf(tmp_path / "walk.gltf")
    assert not list(tmp_path.iterdir())


@needs_node
@pytest.mark.parametrize("name", ["generated_0", "generated_1"])
def test_threejs_plays_pipeline_motions_on_motion_joints(glb_files, name):
    """The pipeline's motions are consistent (issue 12), so their glTF plays Motion.joints (< 1 mm)."""
    motion, path = glb_files[name]
    positions = np.array(_threejs_joints(path)["positions"])
    assert np.abs(positions - motion.joints).max() < 1e-3


def test_save_writes_the_glb_beside_the_other_files(generated_motions, tmp_path):
    files = generated_motions["generated_0"].save(tmp_path, "wave", video=False, gltf=True)
    assert files["gltf"] == tmp_path / "wave.glb" and files["gltf"].read_bytes()[:4] == b"glTF"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wave.bvh", "wave.glb", "wave.json", "wave.npy", "wave_joints.npy"]
