"""A BVH file of any rig as the 22 SMPL joints: the rig's mapping (:mod:`rigs`) applied to the parsed file
(:mod:`bvh`), resampled to 30 fps, in metres with Y up.

    joints, fps = load_bvh_joints("clip.bvh")         # (T, 22, 3) metres, Y up, 30 fps
    features = bvh_to_features("clip.bvh")            # (T, 272)
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from motionmillion.motion.bvh import BVHData, BVHError, forward_transforms, local_transforms, read_bvh, resample_local
from motionmillion.motion.kinematics import rotations_from_positions
from motionmillion.motion.representation import encode_272
from motionmillion.motion.rigs import RIGS, RigMapping, detect_rig, resolve_rig
from motionmillion.motion.skeleton import FPS, JOINT_NAMES, NUM_JOINTS

# Candidate units: metres per file unit. Chosen by the head-to-ankle chain length (see detect_unit).
UNITS: dict[str, float] = {"metres": 1.0, "centimetres": 0.01, "inches": 0.0254, "millimetres": 0.001}
# Sum of bone lengths head-neck-spine3-spine2-spine1-pelvis-hip-knee-ankle of an adult, metres.
_TYPICAL_CHAIN_LENGTH = 1.5
_UNIT_CHAIN = (15, 12, 9, 6, 3, 0, 1, 4, 7)

# Rotations taking a source up axis to +Y (right-handed, so left/right are preserved).
_UP_AXIS_TO_Y: dict[str, np.ndarray] = {
    "y": np.eye(3),
    "z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),  # (x, y, z) -> (x, z, -y)
    "x": np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),  # (x, y, z) -> (-y, x, z)
}


def detect_unit(joints: np.ndarray) -> tuple[str, float]:
    """Guess the file unit from the mapped skeleton; return (unit name, metres per unit).

    The summed bone lengths of the head-to-left-ankle chain (head, neck, spine3..1, pelvis, hip,
    knee, ankle) are pose independent and about 1.5 m for an adult (1.0-1.8 m from children to tall
    adults). The unit whose conversion lands closest to 1.5 m on a log scale wins: ~1.5 means metres,
    ~59 inches, ~150 centimetres, ~1500 millimetres. The decision boundaries (e.g. ~94 between
    inches and centimetres) sit far from any human size in either unit.
    """
    chain = joints[:, list(_UNIT_CHAIN)]
    length = float(np.median(np.linalg.norm(np.diff(chain, axis=1), axis=-1).sum(axis=1)))
    if not length > 0:
        raise ValueError("cannot detect the unit of a skeleton with zero size")
    name = min(UNITS, key=lambda u: abs(math.log(length * UNITS[u] / _TYPICAL_CHAIN_LENGTH)))
    return name, UNITS[name]


def map_to_smpl(data: BVHData, rig: RigMapping, positions: np.ndarray, end_positions: np.ndarray) -> np.ndarray:
    """Evaluate the rig's definitions on world positions -> (T, 22, 3) in file units and axes."""
    out = np.empty((positions.shape[0], NUM_JOINTS, 3))
    for j, smpl_name in enumerate(JOINT_NAMES):
        points = []
        for ref in rig.sources(smpl_name):
            if ref.end_site:
                index = _end_site_of(data, ref.joint)
                points.append(end_positions[:, index])
            else:
                points.append(positions[:, _joint_index(data, ref.joint)])
        out[:, j] = np.mean(points, axis=0)
    return out


def _joint_index(data: BVHData, name: str) -> int:
    lowered = [n.lower() for n in data.names]
    try:
        return lowered.index(name.lower())
    except ValueError:
        raise BVHError(f"{data.path}: the rig needs a joint {name!r} that the file does not have") from None


def _end_site_of(data: BVHData, name: str) -> int:
    joint = _joint_index(data, name)
    for k, (parent, _) in enumerate(data.end_sites):
        if parent == joint:
            return k
    raise BVHError(f"{data.path}: the rig needs an End Site under {name!r}, which has none")


def mapped_joints(data: BVHData, rig: RigMapping) -> list[int]:
    """The joints ``rig`` refers to and all their ancestors, in file order (parent first, as any sorted
    subset of ancestors is); a :class:`BVHError` names a joint or End Site the file lacks."""
    needed = set()
    for ref in rig.all_sources():
        j = _joint_index(data, ref.joint)
        if ref.end_site:
            _end_site_of(data, ref.joint)
        while j >= 0 and j not in needed:
            needed.add(j)
            j = int(data.parents[j])
    return sorted(needed)


def load_bvh_joints(
    path: str | Path,
    rig: str | RigMapping | None = None,
    source_fps: float | None = None,
    target_fps: float = FPS,
    unit_scale: float | None = None,
    up_axis: str | None = None,
) -> tuple[np.ndarray, float]:
    """Load a BVH file as the 22 SMPL joints: (T, 22, 3) world positions in metres, Y up, ``target_fps``.

    Args:
        path: the BVH file.
        rig: a name in :data:`motionmillion.motion.rigs.RIGS`, a :class:`RigMapping`, or None to detect.
        source_fps: the file's true frame rate; overrides the header (CMU salsa says 120 but is 60).
        target_fps: output frame rate. Local rotations are Slerp-resampled and root/joint
            translations linearly resampled *before* forward kinematics, so bones stay rigid.
        unit_scale: metres per file unit; None detects it from the skeleton size (see
            :func:`detect_unit`: metres, centimetres, inches or millimetres).
        up_axis: "y", "z" or "x", the source's up axis; None uses the rig's (Bandai, CMU: "y").
            Converted with a proper rotation, so the body's left stays its left.

    Returns:
        (joints, source_fps): joints in metres, and the frame rate the file was read at.
    """
    data = read_bvh(path)
    mapping = _rig_for(data, rig)
    fps = float(source_fps) if source_fps is not None else data.fps
    if not (math.isfinite(fps) and fps > 0):
        raise BVHError(f"{data.path}: source fps must be positive, got {fps}")
    up = (up_axis or mapping.up_axis).lower()
    if up not in _UP_AXIS_TO_Y:
        raise BVHError(f"{data.path}: unknown up axis {up!r} (use one of {sorted(_UP_AXIS_TO_Y)})")

    subset = mapped_joints(data, mapping)  # only these need transforms
    remap = {j: k for k, j in enumerate(subset)}
    parents = np.array([remap.get(int(data.parents[j]), -1) for j in subset])

    rotations, translations = local_transforms(data, subset)
    if abs(fps - target_fps) > 1e-6:
        rotations, translations = resample_local(rotations, translations, fps, target_fps)
    positions_sub, orientations_sub = forward_transforms(parents, rotations, translations)

    # Scatter back to full joint indexing (unused joints stay NaN and are never read).
    positions = np.full((len(positions_sub), len(data.names), 3), np.nan)
    positions[:, subset] = positions_sub
    end_positions = np.full((len(positions_sub), len(data.end_sites), 3), np.nan)
    for k, (parent, offset) in enumerate(data.end_sites):
        if parent in remap:
            end_positions[:, k] = positions_sub[:, remap[parent]] + orientations_sub[:, remap[parent]] @ offset

    joints = map_to_smpl(data, mapping, positions, end_positions)
    joints = joints @ _UP_AXIS_TO_Y[up].T
    if unit_scale is None:
        try:
            _, unit_scale = detect_unit(joints)
        except ValueError as err:
            raise BVHError(f"{data.path}: {err}") from None
    joints = joints * float(unit_scale)
    if not np.isfinite(joints).all():
        raise BVHError(f"{data.path}: forward kinematics produced non-finite positions")
    return joints, fps


def _rig_for(data: BVHData, rig: str | RigMapping | None) -> RigMapping:
    if isinstance(rig, RigMapping):
        return rig
    try:
        return resolve_rig(rig) if rig is not None else RIGS[detect_rig(data.names)]
    except ValueError as err:
        raise BVHError(f"{data.path}: {err}") from None


def bvh_to_features(
    path: str | Path,
    rig: str | RigMapping | None = None,
    source_fps: float | None = None,
    target_fps: float = FPS,
    unit_scale: float | None = None,
    up_axis: str | None = None,
) -> np.ndarray:
    """BVH -> (T, 272) features: :func:`load_bvh_joints`, rotations from positions, :func:`encode_272`."""
    joints, _ = load_bvh_joints(path, rig, source_fps, target_fps, unit_scale, up_axis)
    return encode_272(joints, rotations_from_positions(joints))
