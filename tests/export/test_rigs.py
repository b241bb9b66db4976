"""BVH export onto other rigs, read back by the project's reader and by bvhio (PyPI), bone by bone."""

from __future__ import annotations

import numpy as np
import pytest
from export_measure import mapped_bones, read_positions_bvhio, read_positions_project, read_positions_threejs, rig_errors
from export_readers import node_missing

from motionmillion.export.retarget import export_rigs, load_rig_template, retarget
from motionmillion.motion import Motion
from motionmillion.motion.bvh import read_bvh
from motionmillion.motion.rigs import UnknownRigError, detect_rig

RIGS = ["smpl", "mixamo", "bandai", "cmu"]
READERS = {"project": read_positions_project, "bvhio": read_positions_bvhio, "threejs": read_positions_threejs}
UNITS = {"smpl": 1.0, "mixamo": 100.0, "bandai": 100.0, "cmu": 100.0}


def _motions(request) -> dict[str, Motion]:
    return {**request.getfixturevalue("real_motions"), **request.getfixturevalue("generated_motions")}


@pytest.fixture(scope="module")
def rig_files(request, tmp_path_factory) -> dict[tuple[str, str], str]:
    folder = tmp_path_factory.mktemp("rigs")
    return {(name, rig): motion.to_bvh(folder / f"{name}_{rig}.bvh", rig=rig)
            for name, motion in _motions(request).items() for rig in RIGS}  # fmt: skip


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("rig", RIGS)
def test_mapped_bones_follow_the_motion_and_feet_stay_on_the_floor(request, rig_files, rig, reader):
    if reader == "bvhio":
        pytest.importorskip("bvhio", reason="bvhio (PyPI, in the dev extra) is not installed")
    if reader == "threejs" and node_missing():
        pytest.skip(node_missing())
    for name, motion in _motions(request).items():
        errors = rig_errors(motion, rig_files[name, rig], rig, READERS[reader], UNITS[rig])
        assert errors["frames"] == motion.num_frames
        assert errors["foot_height_m"] < 0.01, (name, errors)
        # CMU's rig has no spine1 joint: on a generated motion, whose spine1 bends, the hip->abdomen
        # bone misses that bend (2.3 degrees at most on these motions); every other bone is exact.
        limit = 2.5 if (rig == "cmu" and name.startswith("generated")) else 1.0
        assert errors["bone_degrees"] < limit, (name, errors)


def test_cmu_misses_only_the_bone_across_its_missing_spine_joint(generated_motions, rig_files):
    motion = generated_motions["generated_0"]
    names, positions = read_positions_project(rig_files["generated_0", "cmu"])
    source = retarget(motion, "cmu").positions * 100.0
    for parent, child, _, _ in mapped_bones("cmu"):
        if (parent, child) != ("hip", "abdomen"):
            rig_bone = positions[:, names.index(child)] - positions[:, names.index(parent)]
            aimed = source[:, names.index(child)] - source[:, names.index(parent)]
            cos = np.sum(rig_bone * aimed, -1) / (np.linalg.norm(rig_bone, axis=-1) * np.linalg.norm(aimed, axis=-1))
            assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 0.01, (parent, child)


@pytest.mark.parametrize("rig", ["mixamo", "bandai", "cmu"])
def test_rig_files_are_the_rigs_own_skeleton(real_motions, rig_files, rig):
    """Names, hierarchy and unit of the rig; zero rotations = the rig's rest pose (bones along the
    template's rest directions), so the file plays on a character of that rig without fixes."""
    template = load_rig_template(rig)
    data = read_bvh(rig_files["bandai_walk", rig])
    assert data.names == template.skeleton.names
    assert list(data.parents) == list(template.skeleton.parents)
    assert detect_rig(data.names) == template.name  # our importer recognises it
    for j in range(1, len(data.names)):
        parent = data.parents[j]
        if j == template.skeleton.translated or template.skeleton.children(parent) != [j] or template.smpl_index[parent] is None:
            continue  # sockets (several bones from a joint, CMU's buttocks) sit where the motion has them
        ours, theirs = data.offsets[j], template.skeleton.offsets[j]
        cos = ours @ theirs / (np.linalg.norm(ours) * np.linalg.norm(theirs))
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))) < 1.0, data.names[j]
    hips = template.skeleton.names[template.skeleton.translated]
    height = read_positions_project(rig_files["bandai_walk", rig])[1][0, data.names.index(hips), 1]
    assert 80 < height < 110  # centimetres


def test_mixamo_is_a_t_pose_facing_z(rig_files):
    data = read_bvh(rig_files["cmu_martial", "mixamo"])
    offset = {name: data.offsets[i] / np.linalg.norm(data.offsets[i]) for i, name in enumerate(data.names) if i}
    assert offset["mixamorig:LeftForeArm"] @ [1, 0, 0] > 0.999 and offset["mixamorig:RightForeArm"] @ [-1, 0, 0] > 0.999
    assert offset["mixamorig:LeftLeg"] @ [0, -1, 0] > 0.999 and offset["mixamorig:Spine1"] @ [0, 1, 0] > 0.999
    assert offset["mixamorig:LeftToeBase"][2] > 0.5  # feet point forward (+Z)


def test_mixamo_file_reads_back_as_the_same_motion(real_motions, rig_files):
    motion = real_motions["cmu_martial"]
    back = Motion.load(rig_files["cmu_martial", "mixamo"])  # detected as mixamo, mapped to SMPL
    assert np.abs(back.joints - motion.joints).max() < 1e-3


def test_unknown_rig_lists_the_known_ones(real_motions, tmp_path):
    with pytest.raises(UnknownRigError, match="unknown rig 'maya'.*smpl, bandai, cmu-daz, mixamo"):
        real_motions["bandai_walk"].to_bvh(tmp_path / "x.bvh", rig="maya")
    assert export_rigs() == ["smpl", "bandai", "cmu-daz", "mixamo"]
    assert not list(tmp_path.iterdir())
