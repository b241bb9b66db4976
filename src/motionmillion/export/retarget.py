"""Retarget a motion onto another rig's skeleton by rotation transfer with rest-pose correction.

A rig is its :class:`~motionmillion.motion.rigs.RigMapping` (which rig joint stands for which SMPL
joint) plus a template skeleton (``assets/rigs/<rig>.bvh``: the rig's hierarchy, names, units, and one
frame that poses it in a T-pose facing +Z, the pose in which every SMPL rotation is the identity).

For a rig joint j standing for SMPL joint s, with T-pose orientation O_j, the world orientation is

    G_j(t) = G_s(t) A_j O_j

where A_j is the small constant turn that points the rig's T-pose bones out of j along the SMPL rest
bones (Kabsch over several bones, the least rotation for one; a leaf reuses its parent's). So the
exported rotations are in the rig's own joint frames (zero channels = the rig's rest pose), and the
mapped bones point exactly where the motion's bones point. Bone lengths are the motion's (fitted, in
the rig's unit), so the root translation and the feet stay where the motion has them. Rig joints with
no SMPL counterpart (CMU's buttocks, Bandai's ground root) keep their T-pose local rotation. Where a
rig lacks an SMPL joint (Bandai has no spine3, CMU no spine1) the bones across the gap cannot follow
a bend there: Bandai's Chest turns its three bones as one rigid set onto the motion's; CMU's hip follows
the pelvis, keeping the legs exact, and its bone to the abdomen misses spine1's bend (tests measure both).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from motionmillion.motion.bvh import Skeleton, read_bvh, world_transforms, write_skeleton_bvh
from motionmillion.motion.kinematics import forward_kinematics, local_to_global
from motionmillion.motion.motion import Motion
from motionmillion.motion.rigs import RIG_ALIASES, RIGS, RigMapping, UnknownRigError, resolve_rig, rig_template_path
from motionmillion.motion.rotations import kabsch, rotation_between
from motionmillion.motion.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS


@dataclass(frozen=True)
class RigTemplate:
    mapping: RigMapping
    skeleton: Skeleton  # names, parents, offsets and End Sites in the rig's unit
    units_per_metre: float
    tpose_orientations: np.ndarray  # (J, 3, 3) world orientation of each joint in the T-pose
    tpose_positions: np.ndarray  # (J, 3) rig units
    smpl_index: tuple[int | None, ...]  # the SMPL joint each rig joint stands for
    smpl_end_sites: dict[int, int]  # rig joint whose End Site stands for an SMPL joint -> that joint

    @property
    def name(self) -> str:
        return self.mapping.name


def export_rigs() -> list[str]:
    """Names of the rigs a motion can be exported to (``smpl`` is the motion's own skeleton)."""
    return [name for name in RIGS if name == "smpl" or rig_template_path(name) is not None]


def describe_rigs() -> list[tuple[str, str]]:
    """(name, description with any other names it answers to) of every export rig."""
    out = []
    for name in export_rigs():
        aliases = [alias for alias, target in RIG_ALIASES.items() if target == name]
        out.append((name, RIGS[name].description + (f" Also: {', '.join(aliases)}." if aliases else "")))
    return out


@functools.cache
def load_rig_template(name: str) -> RigTemplate:
    """The export template of a rig; :class:`UnknownRigError` lists the known rigs for any other name."""
    mapping = RIGS[resolve_rig_name(name)]
    path = rig_template_path(mapping.name)
    if path is None:
        raise UnknownRigError(f"rig {name!r} is each motion's own skeleton and needs no retargeting")
    data = read_bvh(path)
    positions, orientations = world_transforms(data)
    # The joint that carries the translation: the first below the root with position channels, if any
    # (Bandai's Hips under a static ground joint), else the root.
    translated = next((j for j in range(1, len(data.names)) if "Xposition" in data.channels[j]), 0)
    offsets = data.offsets.copy()
    offsets[translated] = positions[0, translated] - (positions[0, data.parents[translated]] if translated else 0)
    skeleton = Skeleton(list(data.names), data.parents.copy(), offsets, dict(data.end_sites), translated)
    lowered = [n.lower() for n in data.names]
    smpl_index: list[int | None] = [None] * len(data.names)
    smpl_end_sites: dict[int, int] = {}
    for s, smpl_name in enumerate(JOINT_NAMES):
        refs = mapping.sources(smpl_name)
        if len(refs) != 1:
            continue  # a midpoint: the rig has no joint there
        j = lowered.index(refs[0].joint.lower())
        if refs[0].end_site:
            smpl_end_sites[j] = s
        else:
            smpl_index[j] = s
    return RigTemplate(
        mapping, skeleton, 100.0, orientations[0], positions[0], tuple(smpl_index), smpl_end_sites
    )


@dataclass
class RetargetedMotion:
    """A motion on a rig's skeleton, in metres: what a rig BVH holds."""

    template: RigTemplate
    skeleton: Skeleton  # offsets and End Sites in metres (the motion's bone lengths)
    rotations: np.ndarray  # (T, J, 3, 3) local
    translations: np.ndarray  # (T, 3) of skeleton.translated, in its parent's frame
    positions: np.ndarray  # (T, J, 3) world positions the retarget aimed for (metres)
    fps: float

    def write_bvh(self, path: str | Path) -> Path:
        return write_skeleton_bvh(
            path, self.skeleton, self.rotations, self.translations, fps=self.fps, unit_scale=self.template.units_per_metre
        )


def _mapped_descendants(skeleton: Skeleton, smpl_index, joint: int) -> list[int]:
    found = []
    for child in skeleton.children(joint):
        found += [child] if smpl_index[child] is not None else _mapped_descendants(skeleton, smpl_index, child)
    return found


def retarget(motion: Motion, rig: str) -> RetargetedMotion:
    """The motion on ``rig``'s skeleton (see the module docstring)."""
    template = load_rig_template(rig)
    tree, smpl_index = template.skeleton, template.smpl_index
    rotations, root, offsets, source = motion.rigid_pose()
    source_global = local_to_global(rotations)
    smpl_rest = forward_kinematics(np.eye(3)[None, None].repeat(NUM_JOINTS, 1), np.zeros((1, 3)), offsets)[0]
    num_frames, num_joints = len(rotations), len(tree.names)
    # Rig units -> metres for the parts the motion does not size (unmapped joints, plain End Sites).
    mapped = [j for j in range(num_joints) if smpl_index[j] is not None]
    rig_span = np.ptp(template.tpose_positions[mapped, 1])
    scale = np.ptp(smpl_rest[[smpl_index[j] for j in mapped], 1]) / rig_span

    orientation = np.empty((num_frames, num_joints, 3, 3))
    positions = np.empty((num_frames, num_joints, 3))
    correction: dict[int, np.ndarray] = {}
    tpose, tpose_at = template.tpose_orientations, template.tpose_positions
    for j in range(num_joints):
        parent, s = int(tree.parents[j]), smpl_index[j]
        if s is None:
            base = orientation[:, parent] if parent >= 0 else np.eye(3)
            local_tpose = tpose[parent].T @ tpose[j] if parent >= 0 else tpose[j]
            orientation[:, j] = base @ local_tpose
            start = positions[:, parent] if parent >= 0 else np.zeros(3)
            rest_offset = tree.offsets[j] * scale
            positions[:, j] = start + (np.einsum("tij,j->ti", orientation[:, parent], rest_offset) if parent >= 0 else rest_offset)
            continue
        kids = _mapped_descendants(tree, smpl_index, j)
        kid_smpl = [smpl_index[k] for k in kids]
        if kids:
            rig_bones = tpose_at[kids] - tpose_at[j]
            smpl_bones = smpl_rest[kid_smpl] - smpl_rest[s]
            rig_dirs = rig_bones / np.linalg.norm(rig_bones, axis=-1, keepdims=True)
            smpl_dirs = smpl_bones / np.linalg.norm(smpl_bones, axis=-1, keepdims=True)
            turn = kabsch(rig_dirs, smpl_dirs) if len(kids) > 1 else rotation_between(rig_dirs[0], smpl_dirs[0])
        else:
            ancestor = parent
            while ancestor >= 0 and ancestor not in correction:
                ancestor = int(tree.parents[ancestor])
            turn = correction.get(ancestor, np.eye(3))
        correction[j] = turn
        rest_orientation = turn @ tpose[j]
        if len(kids) > 1 and all(PARENTS[k] != s for k in kid_smpl):
            # The rig lacks the SMPL joint below j (Bandai has no spine3): no SMPL rotation carries j's
            # bones, so turn them, as one rigid set, onto where the motion has them. (Where some bones
            # do hang off s, as CMU's thighs off the pelvis, s's rotation keeps those, and the legs, exact.)
            rest_bones = smpl_bones @ rest_orientation  # in j's own frame
            orientation[:, j] = kabsch(rest_bones, source[:, kid_smpl] - source[:, s : s + 1])
        else:
            orientation[:, j] = source_global[:, s] @ rest_orientation
        positions[:, j] = source[:, s]

    # Offsets: the least-squares rigid fit of the aimed-for positions (exact where the motion is rigid).
    skeleton_offsets = np.empty((num_joints, 3))
    local = np.empty_like(orientation)
    for j in range(num_joints):
        parent = int(tree.parents[j])
        if parent < 0:
            local[:, j] = orientation[:, j]
            skeleton_offsets[j] = positions[0, j]
            continue
        local[:, j] = np.swapaxes(orientation[:, parent], -1, -2) @ orientation[:, j]
        relative = np.einsum("tji,tj->ti", orientation[:, parent], positions[:, j] - positions[:, parent])
        skeleton_offsets[j] = relative.mean(axis=0) if smpl_index[j] is not None else tree.offsets[j] * scale
    translated = tree.translated
    if translated == 0:
        translations = positions[:, 0]
    else:
        parent = int(tree.parents[translated])
        translations = np.einsum("tji,tj->ti", orientation[:, parent], positions[:, translated] - positions[:, parent])
    end_sites = {}
    for j, offset in tree.end_sites.items():
        if j in template.smpl_end_sites:  # e.g. CMU's toes: the End Site under the foot
            target = source[:, template.smpl_end_sites[j]] - positions[:, j]
            end_sites[j] = np.einsum("tji,tj->ti", orientation[:, j], target).mean(axis=0)
        else:
            end_sites[j] = np.asarray(offset) * scale
    skeleton = Skeleton(list(tree.names), tree.parents.copy(), skeleton_offsets, end_sites, translated)
    return RetargetedMotion(template, skeleton, local, translations, positions, motion.fps)


def write_rig_bvh(motion: Motion, path: str | Path, rig: str = "smpl") -> Path:
    """Write ``motion`` as a BVH for ``rig`` (``smpl``: the motion's own skeleton in metres; other rigs
    in their own unit, bone names and rest pose)."""
    if resolve_rig_name(rig) == "smpl":
        return motion.to_bvh(path)
    return retarget(motion, rig).write_bvh(path)


def resolve_rig_name(rig: str) -> str:
    """The canonical name of an export rig (``cmu`` -> ``cmu-daz``); an unknown name lists the known ones."""
    try:
        name = resolve_rig(rig).name
    except UnknownRigError:
        name = None
    if name not in export_rigs():
        raise UnknownRigError(f"unknown rig {rig!r} (known: {', '.join(export_rigs())})")
    return name
