"""Regenerate the export rig templates in src/motionmillion/assets/rigs/ (hierarchy + one T-pose frame).

    .venv/bin/python recipes/rig_templates.py

- mixamo.bvh: Mixamo's standard humanoid bone names and hierarchy (no fingers), centimetres, T-pose rest
  (all rotations zero) facing +Z with the character's left at +X. Proportions are those of an adult
  Mixamo character; an export replaces every mapped bone length with the motion's own.
- cmu-daz.bvh: the body joints of the CMU "Daz-friendly" rig, copied from the fixture clip
  tests/fixtures/bvh/cmu-dance/train_data_bvh/salsa/01.bvh (its rest is already a T-pose facing +Z).
- bandai.bvh: the Bandai-Namco rig, copied from a fixture clip. Its bones lie along their joints' X
  axes, so zero rotations are no T-pose: the template's frame is the rotation of each joint when the
  body stands in our T-pose, averaged over the fixture clips (our importer's SMPL rotations against
  the file's own joint orientations). That is the rest-pose correction the exporter applies.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from motionmillion.motion import local_to_global, rotations_from_positions
from motionmillion.motion.bvh import Skeleton, read_bvh, world_transforms, write_skeleton_bvh
from motionmillion.motion.rig_mapping import load_bvh_joints, mapped_joints
from motionmillion.motion.rigs import BANDAI, CMU_DAZ
from motionmillion.motion.skeleton import JOINT_NAMES

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "src/motionmillion/assets/rigs"
FIXTURES = ROOT / "tests/fixtures/bvh"
BANDAI_CLIPS = sorted((FIXTURES / "bandai").rglob("*.bvh"))
CMU_CLIP = FIXTURES / "cmu-dance/train_data_bvh/salsa/01.bvh"

# (name, parent, offset in cm); End Sites as (joint, offset).
MIXAMO_JOINTS = [
    ("Hips", None, (0.0, 100.0, 0.0)),
    ("Spine", "Hips", (0.0, 10.0, 0.5)),
    ("Spine1", "Spine", (0.0, 11.7, 0.0)),
    ("Spine2", "Spine1", (0.0, 13.4, 0.0)),
    ("Neck", "Spine2", (0.0, 15.0, -1.0)),
    ("Head", "Neck", (0.0, 10.3, 3.0)),
    ("LeftShoulder", "Spine2", (6.1, 9.1, -0.8)),
    ("LeftArm", "LeftShoulder", (12.9, 0.0, 0.0)),
    ("LeftForeArm", "LeftArm", (27.4, 0.0, 0.0)),
    ("LeftHand", "LeftForeArm", (27.7, 0.0, 0.0)),
    ("RightShoulder", "Spine2", (-6.1, 9.1, -0.8)),
    ("RightArm", "RightShoulder", (-12.9, 0.0, 0.0)),
    ("RightForeArm", "RightArm", (-27.4, 0.0, 0.0)),
    ("RightHand", "RightForeArm", (-27.7, 0.0, 0.0)),
    ("LeftUpLeg", "Hips", (9.1, -6.7, 0.0)),
    ("LeftLeg", "LeftUpLeg", (0.0, -42.0, 0.0)),
    ("LeftFoot", "LeftLeg", (0.0, -42.0, 0.0)),
    ("LeftToeBase", "LeftFoot", (0.0, -8.0, 12.0)),
    ("RightUpLeg", "Hips", (-9.1, -6.7, 0.0)),
    ("RightLeg", "RightUpLeg", (0.0, -42.0, 0.0)),
    ("RightFoot", "RightLeg", (0.0, -42.0, 0.0)),
    ("RightToeBase", "RightFoot", (0.0, -8.0, 12.0)),
]
MIXAMO_ENDS = {"Head": (0.0, 18.0, 0.0), "LeftHand": (10.0, 0.0, 0.0), "RightHand": (-10.0, 0.0, 0.0),
               "LeftToeBase": (0.0, 0.0, 8.0), "RightToeBase": (0.0, 0.0, 8.0)}  # fmt: skip


def write_template(path: Path, skeleton: Skeleton, local_rotations: np.ndarray) -> None:
    translation = skeleton.offsets[skeleton.translated][None]
    write_skeleton_bvh(path, skeleton, local_rotations[None], translation, fps=30.0)
    print(f"wrote {path}")


def mixamo() -> None:
    names = [f"mixamorig:{n}" for n, _, _ in MIXAMO_JOINTS]
    parents = np.array([-1 if p is None else [n for n, _, _ in MIXAMO_JOINTS].index(p) for _, p, _ in MIXAMO_JOINTS])
    offsets = np.array([o for _, _, o in MIXAMO_JOINTS])
    ends = {names.index(f"mixamorig:{n}"): np.array(o) for n, o in MIXAMO_ENDS.items()}
    skeleton = Skeleton(names, parents, offsets, ends)
    write_template(OUT / "mixamo.bvh", skeleton, np.tile(np.eye(3), (len(names), 1, 1)))


def _subset(data, keep: list[int]) -> Skeleton:
    remap = {j: k for k, j in enumerate(keep)}
    parents = np.array([remap.get(int(data.parents[j]), -1) for j in keep])
    ends = {remap[p]: off for p, off in data.end_sites if p in remap}
    return Skeleton([data.names[j] for j in keep], parents, data.offsets[keep].copy(), ends)


def cmu() -> None:
    data = read_bvh(CMU_CLIP)
    skeleton = _subset(data, mapped_joints(data, CMU_DAZ))
    for j, name in enumerate(skeleton.names):  # leaves that lost their fingers/eyes get a short End Site
        if not skeleton.children(j) and j not in skeleton.end_sites:
            direction = skeleton.offsets[j] / np.linalg.norm(skeleton.offsets[j])
            skeleton.end_sites[j] = direction * 8.0
    write_template(OUT / "cmu-daz.bvh", skeleton, np.tile(np.eye(3), (len(skeleton.names), 1, 1)))


def bandai() -> None:
    data = read_bvh(BANDAI_CLIPS[0])
    skeleton = _subset(data, list(range(len(data.names))))
    skeleton.translated = skeleton.names.index("Hips")
    # Bandai's End Sites are zero; give leaves a short End Site along their bone axis (+X or -X).
    for j in range(len(skeleton.names)):
        if not skeleton.children(j):
            skeleton.end_sites[j] = np.sign(skeleton.offsets[j][0] or 1.0) * np.array([8.0, 0.0, 0.0])
    smpl_of = {BANDAI.joints[s]: k for k, s in enumerate(JOINT_NAMES) if BANDAI.joints[s] in data.names}
    samples: dict[str, list[np.ndarray]] = {name: [] for name in smpl_of}
    for clip in BANDAI_CLIPS:
        clip_data = read_bvh(clip)
        _, orientations = world_transforms(clip_data)
        joints, _ = load_bvh_joints(clip)  # 30 fps already, like the file
        smpl_global = local_to_global(rotations_from_positions(joints))
        for name, k in smpl_of.items():
            b = clip_data.names.index(name)
            samples[name].append(np.einsum("tji,tjk->tik", smpl_global[:, k], orientations[:, b]))
    tpose = np.tile(np.eye(3), (len(skeleton.names), 1, 1))  # world orientations in the T-pose
    for name, blocks in samples.items():
        tpose[skeleton.names.index(name)] = Rotation.from_matrix(np.concatenate(blocks)).mean().as_matrix()
    local = tpose.copy()
    for j, p in enumerate(skeleton.parents):
        if p >= 0:
            local[j] = tpose[p].T @ tpose[j]
    write_template(OUT / "bandai.bvh", skeleton, local)


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    mixamo()
    cmu()
    bandai()
