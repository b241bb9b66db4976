"""Rig mappings: which joints of a source BVH skeleton stand for the 22 SMPL body joints.

A mapping gives, for every SMPL joint name, a definition in terms of the source rig:

    "Hips"                  a source joint
    "midpoint(Chest,Neck)"  the midpoint of two source points (e.g. a spine joint the rig lacks)
    "end(lFoot)"            the End Site under a source joint (e.g. CMU's toes, which are no joint)

Source names match case-insensitively. Mappings never mirror: the SMPL "left_*" joints must come
out on the body's left (for a figure facing +Z, left is +X); tests check this on real clips.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from motionmillion.motion.skeleton import JOINT_NAMES


class UnknownRigError(ValueError):
    """No known rig matches a skeleton, or an unknown rig name was asked for."""


@dataclass(frozen=True)
class SourceRef:
    joint: str
    end_site: bool = False  # the End Site under ``joint`` rather than the joint itself


_REF = re.compile(r"^\s*(?:(?P<fn>midpoint|end)\s*\((?P<args>[^)]*)\)|(?P<name>[^(),\s]+))\s*$", re.IGNORECASE)


def parse_definition(definition: str) -> tuple[SourceRef, ...]:
    """Parse one definition into the source points whose mean is the SMPL joint."""
    match = _REF.match(definition)
    if not match:
        raise ValueError(f"bad rig definition {definition!r}")
    if match.group("name"):
        return (SourceRef(match.group("name")),)
    args = [a.strip() for a in match.group("args").split(",")]
    fn = match.group("fn").lower()
    if fn == "end" and len(args) == 1 and args[0]:
        return (SourceRef(args[0], end_site=True),)
    if fn == "midpoint" and len(args) >= 2 and all(args):
        return tuple(ref for arg in args for ref in parse_definition(arg))
    raise ValueError(f"bad rig definition {definition!r}")


@dataclass(frozen=True)
class RigMapping:
    """A named mapping from the 22 SMPL joint names to source definitions (see module docstring)."""

    name: str
    joints: dict[str, str]
    up_axis: str = "y"
    description: str = ""

    def __post_init__(self) -> None:
        missing = [j for j in JOINT_NAMES if j not in self.joints]
        extra = [j for j in self.joints if j not in JOINT_NAMES]
        if missing or extra:
            raise ValueError(f"rig {self.name!r}: missing SMPL joints {missing}, unknown SMPL joints {extra}")
        for definition in self.joints.values():
            parse_definition(definition)

    def sources(self, smpl_joint: str) -> tuple[SourceRef, ...]:
        return parse_definition(self.joints[smpl_joint])

    def all_sources(self) -> list[SourceRef]:
        return [ref for j in JOINT_NAMES for ref in self.sources(j)]

    def required_joints(self) -> set[str]:
        """Lower-cased source joint names this mapping needs."""
        return {ref.joint.lower() for ref in self.all_sources()}


def _sided(left: str, right: str, table: dict[str, str]) -> dict[str, str]:
    """Expand {"hip": "UpperLeg_{}"} into left_hip/right_hip with the rig's side spellings."""
    out = {}
    for smpl, pattern in table.items():
        out[f"left_{smpl}"] = pattern.format(left)
        out[f"right_{smpl}"] = pattern.format(right)
    return out


BANDAI = RigMapping(
    name="bandai",
    description="Bandai-Namco-Research-Motiondataset 1 and 2 (21 joints, centimetres, Y up).",
    joints={
        "pelvis": "Hips",
        "spine1": "Spine",
        "spine2": "Chest",
        "spine3": "midpoint(Chest,Neck)",
        "neck": "Neck",
        "head": "Head",
        **_sided(
            "L",
            "R",
            {
                "collar": "Shoulder_{}",
                "shoulder": "UpperArm_{}",
                "elbow": "LowerArm_{}",
                "wrist": "Hand_{}",
                "hip": "UpperLeg_{}",
                "knee": "LowerLeg_{}",
                "ankle": "Foot_{}",
                "foot": "Toes_{}",
            },
        ),
    },
)

# CMU "Daz-friendly" skeleton (cmu-dance train_data_bvh): hip -> abdomen -> chest -> neck -> head;
# hip -> xButtock -> xThigh (hip joint) -> xShin (knee) -> xFoot (ankle) -> End Site (toes);
# chest -> xCollar -> xShldr -> xForeArm -> xHand. abdomen sits 21 cm and chest 32 cm above the
# root, close to SMPL's spine2 (25 cm) and spine3 (30 cm); spine1 is put halfway to the abdomen.
CMU_DAZ = RigMapping(
    name="cmu-daz",
    description="CMU mocap in the Daz-friendly BVH rig (cmu-dance), centimetre-like units, Y up.",
    joints={
        "pelvis": "hip",
        "spine1": "midpoint(hip,abdomen)",
        "spine2": "abdomen",
        "spine3": "chest",
        "neck": "neck",
        "head": "head",
        **_sided(
            "l",
            "r",
            {
                "collar": "{}Collar",
                "shoulder": "{}Shldr",
                "elbow": "{}ForeArm",
                "wrist": "{}Hand",
                "hip": "{}Thigh",
                "knee": "{}Shin",
                "ankle": "{}Foot",
                "foot": "end({}Foot)",
            },
        ),
    },
)

# Reallusion Character Creator (iClone "Motion Dummy"; cmu-cc): 99 joints with fingers, twist and face
# bones, joint rest orientations that are not the identity (a thigh's child offset points along its
# own +Y), so only world positions from forward kinematics are used. The neck twist bone sits where
# SMPL's neck does; CC_Base_NeckTwist02 and the Pelvis/Hip pair (same point) are not needed.
CC_BASE = RigMapping(
    name="cc-base",
    description="Reallusion Character Creator CC_Base_* rig (cmu-cc), centimetres, Y up, floor not at y = 0.",
    joints={
        "pelvis": "CC_Base_Hip",
        "spine1": "CC_Base_Waist",
        "spine2": "CC_Base_Spine01",
        "spine3": "CC_Base_Spine02",
        "neck": "CC_Base_NeckTwist01",
        "head": "CC_Base_Head",
        **_sided(
            "L",
            "R",
            {
                "collar": "CC_Base_{}_Clavicle",
                "shoulder": "CC_Base_{}_Upperarm",
                "elbow": "CC_Base_{}_Forearm",
                "wrist": "CC_Base_{}_Hand",
                "hip": "CC_Base_{}_Thigh",
                "knee": "CC_Base_{}_Calf",
                "ankle": "CC_Base_{}_Foot",
                "foot": "CC_Base_{}_ToeBase",
            },
        ),
    },
)

# Our own exports (write_bvh): the 22 SMPL names; matching is case-insensitive, so the reference's
# "Pelvis, Left_hip, ..., Left_wrist" spelling (plus its extra Left_palm/Right_palm) maps too.
SMPL = RigMapping(
    name="smpl",
    description="SMPL joint names, as written by motionmillion (and the reference's smpl2bvh).",
    joints={name: name for name in JOINT_NAMES},
)

# Mixamo's standard humanoid ("mixamorig:" bone names, as on every character downloaded from Mixamo):
# one joint per SMPL joint. Its template skeleton (assets/rigs/mixamo.bvh) is a T-pose in centimetres.
MIXAMO = RigMapping(
    name="mixamo",
    description="Mixamo characters (mixamorig: bone names, T-pose rest, centimetres, Y up).",
    joints={
        "pelvis": "mixamorig:Hips",
        "spine1": "mixamorig:Spine",
        "spine2": "mixamorig:Spine1",
        "spine3": "mixamorig:Spine2",
        "neck": "mixamorig:Neck",
        "head": "mixamorig:Head",
        **_sided(
            "Left",
            "Right",
            {
                "collar": "mixamorig:{}Shoulder",
                "shoulder": "mixamorig:{}Arm",
                "elbow": "mixamorig:{}ForeArm",
                "wrist": "mixamorig:{}Hand",
                "hip": "mixamorig:{}UpLeg",
                "knee": "mixamorig:{}Leg",
                "ankle": "mixamorig:{}Foot",
                "foot": "mixamorig:{}ToeBase",
            },
        ),
    },
)

RIGS: dict[str, RigMapping] = {rig.name: rig for rig in (SMPL, BANDAI, CMU_DAZ, MIXAMO, CC_BASE)}
RIG_ALIASES = {"cmu": "cmu-daz", "cmu-dance": "cmu-daz", "daz": "cmu-daz", "bandai-namco": "bandai", "cmu-cc": "cc-base",
               "character-creator": "cc-base", "iclone": "cc-base"}  # fmt: skip


def rig_template_path(name: str) -> Path | None:
    """The rig's template skeleton for export (``assets/rigs/<name>.bvh``: its hierarchy, bone names and
    units, and one frame that poses it in a T-pose facing +Z), or None for ``smpl``, whose skeleton is
    each motion's own. ``recipes/rig_templates.py`` says where each template comes from."""
    path = Path(__file__).resolve().parent.parent / "assets" / "rigs" / f"{resolve_rig(name).name}.bvh"
    return path if path.is_file() else None


def resolve_rig(name: str) -> RigMapping:
    key = RIG_ALIASES.get(name.lower(), name.lower())
    if key not in RIGS:
        raise UnknownRigError(f"unknown rig {name!r} (known: {', '.join(RIGS)})")
    return RIGS[key]


def detect_rig(joint_names: Iterable[str]) -> str:
    """Name of the first rig in :data:`RIGS` whose source joints all exist in ``joint_names``.

    Raises :class:`UnknownRigError` naming the closest rig and what it lacks.
    """
    present = {n.lower() for n in joint_names}
    best: tuple[int, str, list[str]] | None = None
    for name, rig in RIGS.items():
        missing = sorted(rig.required_joints() - present)
        if not missing:
            return name
        if best is None or len(missing) < best[0]:
            best = (len(missing), name, missing)
    assert best is not None
    _, name, missing = best
    shown = ", ".join(missing[:6]) + (", ..." if len(missing) > 6 else "")
    raise UnknownRigError(
        f"unknown rig: no mapping fits these joints (closest is {name!r}, which lacks {shown}); "
        f"pass rig= one of {', '.join(RIGS)} or add a RigMapping"
    )
