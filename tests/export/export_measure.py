"""Measurements shared by the export tests: bone directions and foot heights of a rig BVH, read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from motionmillion.export.retarget import load_rig_template
from motionmillion.motion import Motion
from motionmillion.motion.bvh import read_bvh, world_transforms
from motionmillion.motion.skeleton import FOOT_JOINTS, PARENTS


def read_positions_project(path: Path) -> tuple[list[str], np.ndarray]:
    """Joint names and world positions (T, J, 3) in file units, by the project's BVH reader."""
    data = read_bvh(path)
    return data.names, world_transforms(data)[0]


def read_positions_bvhio(path: Path) -> tuple[list[str], np.ndarray]:
    """The same by bvhio, an independent reader from PyPI."""
    import bvhio

    root = bvhio.readAsHierarchy(str(path))
    layout = [joint for joint, _, _ in root.layout()]
    frames = []
    for frame in range(len(root.Keyframes)):
        root.loadPose(frame)
        frames.append([tuple(joint.PositionWorld) for joint in layout])
    return [joint.Name for joint in layout], np.array(frames)


def read_positions_threejs(path: Path) -> tuple[list[str], np.ndarray]:
    """The same by three.js's BVHLoader under Node (which reads ':' in names as '_'; names given back)."""
    import re

    from export_readers import run_node

    (out,) = run_node("bvh_joints.mjs", str(path))
    original = {n.replace(":", "_"): n for n in re.findall(r"(?:ROOT|JOINT)\s+(\S+)", Path(path).read_text())}
    return [original[n] for n in out["names"]], np.array(out["positions"])


def mapped_bones(rig: str) -> list[tuple[str, str, int, int]]:
    """(rig parent, rig child, SMPL joint, SMPL joint) for every rig bone whose two ends are mapped
    (through unmapped rig joints such as CMU's buttocks), and for ``smpl`` its own bones."""
    if rig == "smpl":
        from motionmillion.motion.skeleton import JOINT_NAMES

        return [(JOINT_NAMES[p], JOINT_NAMES[j], p, j) for j, p in enumerate(PARENTS) if p >= 0]
    template = load_rig_template(rig)
    tree, index = template.skeleton, template.smpl_index
    bones = []
    for j, s in enumerate(index):
        if s is None:
            continue
        parent = int(tree.parents[j])
        while parent >= 0 and index[parent] is None:
            parent = int(tree.parents[parent])
        if parent >= 0:
            bones.append((tree.names[parent], tree.names[j], index[parent], s))
    return bones


def rig_errors(motion: Motion, path: Path, rig: str, reader, units_per_metre: float) -> dict[str, float]:
    """Largest angle (degrees) between a mapped rig bone and the motion's bone over all frames, and the
    largest difference (metres) of the lowest foot height per frame."""
    names, positions = reader(path)
    positions = positions / units_per_metre
    _, _, _, source = motion.rigid_pose()  # the motion's own rigid skeleton, as every export plays it
    worst = 0.0
    for parent, child, s_parent, s_child in mapped_bones(rig):
        rig_bone = positions[:, names.index(child)] - positions[:, names.index(parent)]
        smpl_bone = source[:, s_child] - source[:, s_parent]
        cos = np.sum(rig_bone * smpl_bone, -1) / (np.linalg.norm(rig_bone, axis=-1) * np.linalg.norm(smpl_bone, axis=-1))
        worst = max(worst, float(np.degrees(np.arccos(np.clip(cos, -1, 1))).max()))
    feet = [names.index(b[1]) for b in mapped_bones(rig) if b[3] in FOOT_JOINTS]
    rig_floor = positions[:, feet, 1].min(axis=1)
    source_floor = source[:, list(FOOT_JOINTS), 1].min(axis=1)
    if rig != "smpl" and len(feet) < 4:  # CMU's toes are End Sites: the lowest of ankles vs ankles
        source_floor = source[:, [b[3] for b in mapped_bones(rig) if b[3] in FOOT_JOINTS], 1].min(axis=1)
    return {"bone_degrees": worst, "foot_height_m": float(np.abs(rig_floor - source_floor).max()), "frames": len(positions)}
