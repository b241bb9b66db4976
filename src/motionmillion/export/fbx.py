"""FBX: an armature in its rest pose, the skinned mannequin and one take, written by Blender's own exporter.

The writer is Blender run headless (``blender -b --factory-startup --python export/blender/write_fbx.py``):
FBX is a closed format and Blender's exporter is the maintained open writer that Unity, Unreal and Maya
users already rely on. Blender comes from the system (``apt-get install blender``: Debian 12 ships
3.4.1) rather than the ``bpy`` wheel from PyPI, because each bpy release is built for exactly one
Python minor (bpy 4.2.0 is one 519 MB wheel, CPython 3.11 only), so as a dependency it would refuse
every other Python this package supports, and it would load a whole Blender into the server's process;
a subprocess needs neither, and any Blender 3.4+ on PATH (or ``MOTIONMILLION_BLENDER``) does (Debian's
package installs in about 40 s).

What the file holds (the same motion as the BVH and glTF: :meth:`Motion.rigid_pose`):

- the skeleton of ``rig``: ``smpl`` is the motion's own 22 joints (SMPL names) in a T-pose with the
  pelvis at its first-frame place; ``mixamo``, ``bandai``, ``cmu`` are the rig templates of
  :mod:`motionmillion.export.retarget` in their own rest pose (all channels zero: a T-pose for Mixamo)
  with the motion's bone lengths; bones point from each joint to its child;
- the mannequin of :mod:`motionmillion.export.gltf` skinned to it;
- one take (named after the motion's text) at the motion's frame rate, one key per frame;
- centimetres (Blender writes FBX in centimetres, the unit Unity, Unreal and Maya expect), Y up,
  the body facing +Z.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from motionmillion.errors import Failure
from motionmillion.motion.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS

if TYPE_CHECKING:  # Motion.to_fbx imports this module
    from motionmillion.motion.motion import Motion

WRITER_SCRIPT = Path(__file__).resolve().parent / "blender" / "write_fbx.py"
BLENDER_ENV = "MOTIONMILLION_BLENDER"  # a blender binary to use instead of the one on PATH
BLENDER_TIMEOUT_S = 600


class BlenderMissingError(Failure):
    """FBX needs a Blender binary, and there is none."""


class BlenderFailedError(Failure):
    """Blender ran but did not write the file."""


def find_blender() -> str | None:
    """The Blender binary FBX export runs (``$MOTIONMILLION_BLENDER``, else ``blender`` on PATH), or None."""
    return shutil.which(os.environ.get(BLENDER_ENV) or "blender")


def require_blender() -> str:
    blender = find_blender()
    if blender is None:
        raise BlenderMissingError(
            "FBX export needs Blender 3.4 or newer: install it (apt-get install blender) or set "
            f"{BLENDER_ENV} to a blender binary"
        )
    return blender


@dataclass(frozen=True)
class ArmatureMotion:
    """A motion on a joint tree, in metres, Y up: what the Blender script turns into an FBX."""

    names: list[str]
    parents: list[int]
    offsets: np.ndarray  # (J, 3) rest offsets from the parent; the root's is its rest position
    rotations: np.ndarray  # (T, J, 3, 3) local, in the parent joint's frame (identity = rest pose)
    translated: int  # the joint that moves; its offset from the parent per frame is ``translations``
    translations: np.ndarray  # (T, 3)
    rest_positions: np.ndarray  # (J, 3) world positions in the rest pose
    vertex_joints: np.ndarray  # (V,) the joint each mannequin vertex follows
    mesh_positions: np.ndarray  # (V, 3) the mannequin around the rest pose
    triangles: np.ndarray  # (F, 3)
    fps: float
    armature: str
    action: str

    def spec(self) -> dict:
        """The JSON the Blender script reads (plain lists: Blender's Python has no numpy)."""
        return {
            "armature": self.armature,
            "action": self.action,
            "fps": float(self.fps),
            "names": list(self.names),
            "parents": [int(p) for p in self.parents],
            "offsets": self.offsets.tolist(),
            "rest_positions": self.rest_positions.tolist(),
            "rotations": np.round(self.rotations, 9).tolist(),
            "translated": int(self.translated),
            "translations": self.translations.tolist(),
            "mesh": {
                "positions": np.round(self.mesh_positions, 6).tolist(),
                "triangles": self.triangles.tolist(),
                "vertex_joints": self.vertex_joints.tolist(),
            },
        }


def armature_motion(motion: Motion, rig: str = "smpl") -> ArmatureMotion:
    """``motion`` on ``rig``'s skeleton (see the module docstring), with the mannequin bound to it."""
    from motionmillion.export.gltf import mannequin
    from motionmillion.export.retarget import resolve_rig_name, retarget

    rig = resolve_rig_name(rig)
    action = motion.text or "motion"
    if rig == "smpl":
        rotations, root, offsets, _ = motion.rigid_pose()
        offsets = offsets.copy()
        offsets[0] = root[0]  # rest: a T-pose with the pelvis where the motion starts
        rest = _rest_positions(list(PARENTS), offsets)
        positions, _, vertex_joints, triangles = mannequin(rest)
        return ArmatureMotion(list(JOINT_NAMES), list(PARENTS), offsets, rotations, 0, root, rest, vertex_joints,
                              positions, triangles, motion.fps, "smpl", action)  # fmt: skip
    target = retarget(motion, rig)
    tree, template = target.skeleton, target.template
    parents = [int(p) for p in tree.parents]
    rest = _rest_positions(parents, tree.offsets)
    # The SMPL joints where the rig has them at rest (a midpoint or End Site where the rig has no joint),
    # so the mannequin is built around the rig's own rest pose.
    lowered = [n.lower() for n in tree.names]
    smpl_rest = np.empty((NUM_JOINTS, 3))
    for s, smpl_name in enumerate(JOINT_NAMES):
        points = []
        for ref in template.mapping.sources(smpl_name):
            j = lowered.index(ref.joint.lower())
            points.append(rest[j] + (tree.end_sites[j] if ref.end_site else 0.0))
        smpl_rest[s] = np.mean(points, axis=0)
    positions, _, smpl_vertex_joints, triangles = mannequin(smpl_rest)
    # Each vertex follows the rig joint of its SMPL joint, or of the nearest SMPL ancestor the rig has.
    rig_of = {s: j for j, s in enumerate(template.smpl_index) if s is not None}
    owner = []
    for s in range(NUM_JOINTS):
        while s not in rig_of:
            s = PARENTS[s]
        owner.append(rig_of[s])
    vertex_joints = np.asarray(owner)[smpl_vertex_joints]
    return ArmatureMotion(list(tree.names), parents, tree.offsets, target.rotations, tree.translated,
                          target.translations, rest, vertex_joints, positions, triangles, motion.fps, rig, action)  # fmt: skip


def _rest_positions(parents: list[int], offsets: np.ndarray) -> np.ndarray:
    """World joint positions with every rotation the identity (parents come before children)."""
    rest = np.array(offsets, dtype=np.float64)
    for j, p in enumerate(parents):
        if p >= 0:
            rest[j] += rest[p]
    return rest


def write_fbx(motion: Motion, path: str | Path, rig: str = "smpl") -> Path:
    """Write ``motion`` as FBX on ``rig`` (``smpl``, ``mixamo``, ``bandai``, ``cmu``), atomically."""
    path = Path(path)
    if path.suffix.lower() != ".fbx":
        raise ValueError(f"{path}: an FBX export needs a .fbx file name")
    run_writer(armature_motion(motion, rig), path)
    return path


def run_writer(armature: ArmatureMotion, path: Path) -> dict:
    """Run Blender on ``armature``, writing ``path`` atomically; the script's timings (build_s, export_s)."""
    from motionmillion.utils.io import atomic_path

    blender = require_blender()
    with tempfile.TemporaryDirectory(prefix="motionmillion-fbx-") as scratch:
        spec_path = Path(scratch) / "motion.json"
        spec_path.write_text(json.dumps(armature.spec()), encoding="utf-8")
        with atomic_path(path) as tmp:
            out = Path(scratch) / "motion.fbx"  # Blender picks its own temp names; keep them out of the folder
            command = [blender, "-b", "--factory-startup", "-noaudio", "--python-exit-code", "1",
                       "--python", str(WRITER_SCRIPT), "--", str(spec_path), str(out)]  # fmt: skip
            done = subprocess.run(command, capture_output=True, text=True, timeout=BLENDER_TIMEOUT_S)
            report = _script_report(done)
            if done.returncode != 0 or report is None or not out.is_file():
                error = next((line.split(" ", 1)[1] for line in done.stdout.splitlines()
                              if line.startswith("MOTIONMILLION-ERROR ")), None)  # fmt: skip
                tail = error or (done.stderr.strip().splitlines() or ["no output"])[-1]
                raise BlenderFailedError(f"{path}: Blender ({blender}) could not write the FBX: {tail}")
            shutil.move(out, tmp)
    return report


def _script_report(done: subprocess.CompletedProcess) -> dict | None:
    for line in done.stdout.splitlines():
        if line.startswith("MOTIONMILLION "):
            return json.loads(line.split(" ", 1)[1])
    return None
