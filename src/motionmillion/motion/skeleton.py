"""The 22-joint SMPL body skeleton: names, parents, chains, mirror pairs, a rest-pose template, and the
skeleton file (``skeleton.json``: one rigid skeleton's joint offsets, e.g. the training data's in a
pipeline folder).

Everything that needs the kinematic tree imports it from here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

NUM_JOINTS = 22
FPS = 30.0

JOINT_NAMES: tuple[str, ...] = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)  # fmt: skip

PARENTS: tuple[int, ...] = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)

# Chains drawn by the renderer, as in the reference's t2m_kinematic_chain.
KINEMATIC_CHAINS: tuple[tuple[int, ...], ...] = (
    (0, 2, 5, 8, 11),  # right leg
    (0, 1, 4, 7, 10),  # left leg
    (0, 3, 6, 9, 12, 15),  # spine and head
    (9, 14, 17, 19, 21),  # right arm
    (9, 13, 16, 18, 20),  # left arm
)

MIRROR_PAIRS: tuple[tuple[int, int], ...] = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21))


def _mirror_permutation() -> np.ndarray:
    perm = np.arange(NUM_JOINTS)
    for a, b in MIRROR_PAIRS:
        perm[a], perm[b] = b, a
    return perm


MIRROR_PERMUTATION: np.ndarray = _mirror_permutation()

LEFT_FOOT_JOINTS = (7, 10)  # left ankle, left foot (toe base)
RIGHT_FOOT_JOINTS = (8, 11)
FOOT_JOINTS = LEFT_FOOT_JOINTS + RIGHT_FOOT_JOINTS
LEG_JOINTS = (1, 2, 4, 5, 7, 8, 10, 11)


def children(joint: int) -> list[int]:
    return [j for j, p in enumerate(PARENTS) if p == joint]


# Rest pose (T-pose, metres, Y up, facing +Z, left side at +X), close to the SMPL neutral body with
# zero shape and made exactly left/right symmetric. Only the bone *directions* are used to define
# rotations; bone lengths always come from the motion itself.
_HALF_TEMPLATE = {
    "pelvis": (0.0, 0.0, 0.0),
    "left_hip": (0.069, -0.091, -0.005),
    "spine1": (0.0, 0.110, -0.012),
    "left_knee": (0.104, -0.476, -0.007),
    "spine2": (0.0, 0.246, 0.000),
    "left_ankle": (0.088, -0.878, -0.044),
    "spine3": (0.0, 0.302, -0.002),
    "left_foot": (0.116, -0.929, 0.075),
    "neck": (0.0, 0.524, -0.031),
    "left_collar": (0.077, 0.432, -0.026),
    "head": (0.0, 0.596, 0.019),
    "left_shoulder": (0.196, 0.465, -0.042),
    "left_elbow": (0.454, 0.448, -0.064),
    "left_wrist": (0.708, 0.461, -0.066),
}


def _template() -> np.ndarray:
    rest = np.zeros((NUM_JOINTS, 3))
    for j, name in enumerate(JOINT_NAMES):
        key = name.replace("right_", "left_")
        x, y, z = _HALF_TEMPLATE[key]
        rest[j] = (-x if name.startswith("right_") else x, y, z)
    return rest


TEMPLATE_REST_JOINTS: np.ndarray = _template()
TEMPLATE_OFFSETS: np.ndarray = np.stack(
    [TEMPLATE_REST_JOINTS[j] - (TEMPLATE_REST_JOINTS[p] if p >= 0 else 0.0) for j, p in enumerate(PARENTS)]
)


# ------------------------------------------------------------------------------------------------
# The skeleton file

# The training data's skeleton inside a pipeline folder.
SKELETON_FILE = "skeleton.json"


class SkeletonFileError(ValueError):
    """A ``skeleton.json`` that cannot be read as 22 joint offsets."""


def bone_lengths(offsets: np.ndarray) -> np.ndarray:
    """Lengths (21,) of the bones parent(j) -> j for j = 1..21."""
    return np.linalg.norm(np.asarray(offsets)[1:], axis=-1)


def save_skeleton(path: str | Path, offsets: np.ndarray, source: str = "", clips: int = 0) -> Path:
    """Write 22 joint offsets (metres, parent -> joint in the rest pose) as JSON, atomically."""
    from motionmillion.utils.io import atomic_write_json

    offsets = np.asarray(offsets, dtype=np.float64)
    if offsets.shape != (NUM_JOINTS, 3) or not np.isfinite(offsets).all():
        raise ValueError(f"{path}: a skeleton is 22 finite offsets, got shape {offsets.shape}")
    atomic_write_json(
        path,
        {
            "units": "metres",
            "about": "rest-pose offset of each joint from its parent (SMPL 22 joints); forward kinematics of "
            "generated motions uses it",
            "source": source,
            "clips": int(clips),
            "offsets": {name: [round(float(v), 6) for v in offsets[j]] for j, name in enumerate(JOINT_NAMES)},
        },
    )
    return Path(path)


def load_skeleton(path: str | Path) -> np.ndarray:
    """Read a skeleton written by :func:`save_skeleton`; (22, 3) offsets in metres."""
    path = Path(path)
    try:
        table = json.loads(path.read_text(encoding="utf-8"))["offsets"]
        offsets = np.array([table[name] for name in JOINT_NAMES], dtype=np.float64)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SkeletonFileError(f"{path}: not a skeleton file with an offset for each of the 22 joints ({err!r})") from err
    if offsets.shape != (NUM_JOINTS, 3) or not np.isfinite(offsets).all() or (bone_lengths(offsets) <= 0).any():
        raise SkeletonFileError(f"{path}: offsets must be 22 finite [x, y, z] triples with non-zero bones")
    return offsets
