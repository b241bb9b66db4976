"""glTF 2.0 (.glb): a skinned mannequin on the motion's skeleton, with one animation.

The file holds the 22 SMPL joints as nodes (named as in :data:`motionmillion.motion.JOINT_NAMES`, in a
T-pose with the motion's own bone lengths), a mannequin mesh built here from capsules and spheres
around that skeleton, each vertex bound to one joint, and one animation at the motion's frame rate:
a rotation channel per joint and the pelvis translation. Written with pygltflib; checked by the
Khronos validator and three.js's GLTFLoader in tests/export.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pygltflib as gl

from motionmillion.motion.kinematics import forward_kinematics
from motionmillion.motion.motion import Motion
from motionmillion.motion.rotations import matrix_to_quaternion
from motionmillion.motion.skeleton import JOINT_NAMES, NUM_JOINTS, PARENTS, children

# Capsule radius (metres) of the bone that ends at each joint; the bone is skinned to its parent joint.
_BONE_RADIUS = {
    "hip": 0.075, "knee": 0.065, "ankle": 0.048, "foot": 0.04, "spine1": 0.11, "spine2": 0.12, "spine3": 0.13,
    "neck": 0.06, "collar": 0.055, "shoulder": 0.055, "elbow": 0.045, "wrist": 0.037, "head": 0.05,
}  # fmt: skip
_HEAD_RADIUS = 0.1
_HAND = (0.085, 0.035)  # length along the forearm, radius
_TOE = (0.05, 0.035)


@dataclass
class _MeshBuilder:
    positions: list[np.ndarray] = field(default_factory=list)
    normals: list[np.ndarray] = field(default_factory=list)
    joints: list[np.ndarray] = field(default_factory=list)
    triangles: list[np.ndarray] = field(default_factory=list)
    count: int = 0

    def capsule(self, a: np.ndarray, b: np.ndarray, radius: float, joint: int, segments: int = 14, cap_rings: int = 4) -> None:
        """A capsule from ``a`` to ``b`` (rings of vertices, hemispherical ends), bound to ``joint``."""
        axis = b - a
        length = float(np.linalg.norm(axis))
        w = axis / length if length > 1e-9 else np.array([0.0, 1.0, 0.0])
        helper = np.array([1.0, 0.0, 0.0]) if abs(w[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
        u = np.cross(w, helper)
        u /= np.linalg.norm(u)
        v = np.cross(w, u)
        # Latitudes from the bottom pole (-pi/2) to the top (pi/2); the cylinder is the gap at the equator.
        lats = np.concatenate([np.linspace(-np.pi / 2, 0, cap_rings + 1), np.linspace(0, np.pi / 2, cap_rings + 1)])
        centres = [a] * (cap_rings + 1) + [b] * (cap_rings + 1)
        angles = np.linspace(0, 2 * np.pi, segments, endpoint=False)
        ring_dirs = np.cos(angles)[:, None] * u + np.sin(angles)[:, None] * v
        verts, norms = [], []
        for lat, centre in zip(lats, centres):
            normal = np.cos(lat) * ring_dirs + np.sin(lat) * w
            verts.append(centre + radius * normal)
            norms.append(normal)
        verts, norms = np.concatenate(verts), np.concatenate(norms)
        tris = []
        for r in range(len(lats) - 1):
            for k in range(segments):
                i0, i1 = r * segments + k, r * segments + (k + 1) % segments
                j0, j1 = i0 + segments, i1 + segments
                tris += [(i0, i1, j1), (i0, j1, j0)]
        tris = np.array(tris)
        # Drop the triangles that degenerate at the poles (all ring vertices coincide there).
        area = np.linalg.norm(np.cross(verts[tris[:, 1]] - verts[tris[:, 0]], verts[tris[:, 2]] - verts[tris[:, 0]]), axis=1)
        tris = tris[area > 1e-12]
        self._add(verts, norms, tris, joint)

    def sphere(self, centre: np.ndarray, radius: float, joint: int) -> None:
        self.capsule(centre, centre, radius, joint, segments=16, cap_rings=6)

    def _add(self, verts: np.ndarray, norms: np.ndarray, tris: np.ndarray, joint: int) -> None:
        self.positions.append(verts)
        self.normals.append(norms / np.linalg.norm(norms, axis=1, keepdims=True))
        self.joints.append(np.full(len(verts), joint))
        self.triangles.append(tris + self.count)
        self.count += len(verts)


def mannequin(rest_positions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(positions, normals, joint per vertex, triangles) of a mannequin around a T-pose skeleton."""
    mesh = _MeshBuilder()
    for j in range(1, NUM_JOINTS):
        p = PARENTS[j]
        key = JOINT_NAMES[j].removeprefix("left_").removeprefix("right_")
        mesh.capsule(rest_positions[p], rest_positions[j], _BONE_RADIUS[key], p)
    head = JOINT_NAMES.index("head")
    up = rest_positions[head] - rest_positions[JOINT_NAMES.index("neck")]
    mesh.sphere(rest_positions[head] + 0.6 * _HEAD_RADIUS * up / np.linalg.norm(up), _HEAD_RADIUS, head)
    for side in ("left", "right"):
        wrist, elbow = JOINT_NAMES.index(f"{side}_wrist"), JOINT_NAMES.index(f"{side}_elbow")
        along = rest_positions[wrist] - rest_positions[elbow]
        mesh.capsule(rest_positions[wrist], rest_positions[wrist] + _HAND[0] * along / np.linalg.norm(along), _HAND[1], wrist)
        foot, ankle = JOINT_NAMES.index(f"{side}_foot"), JOINT_NAMES.index(f"{side}_ankle")
        forward = rest_positions[foot] - rest_positions[ankle]
        forward[1] = 0.0
        mesh.capsule(rest_positions[foot], rest_positions[foot] + _TOE[0] * forward / np.linalg.norm(forward), _TOE[1], foot)
    return (np.concatenate(mesh.positions), np.concatenate(mesh.normals), np.concatenate(mesh.joints),
            np.concatenate(mesh.triangles))  # fmt: skip


class _Blob:
    """The .glb binary chunk: buffer views appended 4-byte aligned, with accessors over them."""

    def __init__(self, gltf: gl.GLTF2):
        self.gltf, self.data = gltf, bytearray()

    def add(self, array: np.ndarray, component: int, kind: str, target: int | None = None, bounds: bool = False) -> int:
        raw = np.ascontiguousarray(array).tobytes()
        self.data += b"\0" * (-len(self.data) % 4)
        self.gltf.bufferViews.append(gl.BufferView(buffer=0, byteOffset=len(self.data), byteLength=len(raw), target=target))
        self.data += raw
        accessor = gl.Accessor(bufferView=len(self.gltf.bufferViews) - 1, componentType=component,
                               count=len(array), type=kind)  # fmt: skip
        if bounds:
            flat = array.reshape(len(array), -1)
            accessor.min, accessor.max = flat.min(axis=0).tolist(), flat.max(axis=0).tolist()
        self.gltf.accessors.append(accessor)
        return len(self.gltf.accessors) - 1


def _continuous_quaternions(matrices: np.ndarray) -> np.ndarray:
    """(T, 3, 3) -> (T, 4) xyzw, signs flipped so neighbouring keys interpolate the short way."""
    quats = matrix_to_quaternion(matrices)
    flips = np.cumprod(np.where(np.sum(quats[1:] * quats[:-1], axis=1) < 0, -1.0, 1.0))
    quats[1:] *= flips[:, None]
    return quats


def build_gltf(motion: Motion) -> gl.GLTF2:
    """The glTF document (with its binary blob set) for ``motion``."""
    rotations, root, offsets, _ = motion.rigid_pose()
    # T-pose (every rotation the identity), pelvis at its first-frame place.
    rest = forward_kinematics(np.tile(np.eye(3), (1, NUM_JOINTS, 1, 1)), root[:1], offsets)[0]

    gltf = gl.GLTF2(asset=gl.Asset(version="2.0", generator="motionmillion"))
    blob = _Blob(gltf)
    mesh_node = NUM_JOINTS  # nodes 0..21 are the joints
    for j, name in enumerate(JOINT_NAMES):
        translation = rest[j] if j == 0 else offsets[j]
        gltf.nodes.append(gl.Node(name=name, translation=[float(x) for x in translation], children=children(j) or None))
    gltf.nodes.append(gl.Node(name="mannequin", mesh=0, skin=0))

    positions, normals, vertex_joints, triangles = mannequin(rest)
    joints4 = np.zeros((len(positions), 4), np.uint8)
    joints4[:, 0] = vertex_joints
    weights4 = np.zeros((len(positions), 4), np.float32)
    weights4[:, 0] = 1.0
    index_type = gl.UNSIGNED_SHORT if len(positions) < 65535 else gl.UNSIGNED_INT
    attributes = gl.Attributes(
        POSITION=blob.add(positions.astype(np.float32), gl.FLOAT, gl.VEC3, gl.ARRAY_BUFFER, bounds=True),
        NORMAL=blob.add(normals.astype(np.float32), gl.FLOAT, gl.VEC3, gl.ARRAY_BUFFER),
        JOINTS_0=blob.add(joints4, gl.UNSIGNED_BYTE, gl.VEC4, gl.ARRAY_BUFFER),
        WEIGHTS_0=blob.add(weights4, gl.FLOAT, gl.VEC4, gl.ARRAY_BUFFER),
    )
    dtype = np.uint16 if index_type == gl.UNSIGNED_SHORT else np.uint32
    indices = blob.add(triangles.reshape(-1).astype(dtype), index_type, gl.SCALAR, gl.ELEMENT_ARRAY_BUFFER)
    gltf.materials.append(gl.Material(name="mannequin", pbrMetallicRoughness=gl.PbrMetallicRoughness(
        baseColorFactor=[0.72, 0.74, 0.78, 1.0], metallicFactor=0.0, roughnessFactor=0.7)))  # fmt: skip
    gltf.meshes.append(gl.Mesh(name="mannequin", primitives=[gl.Primitive(attributes=attributes, indices=indices, material=0)]))

    # Bind pose = the rest T-pose: each joint's world transform is a pure translation.
    inverse_bind = np.tile(np.eye(4, dtype=np.float32), (NUM_JOINTS, 1, 1))
    inverse_bind[:, :3, 3] = -rest
    column_major = np.ascontiguousarray(np.swapaxes(inverse_bind, 1, 2))
    gltf.skins.append(gl.Skin(name="smpl", joints=list(range(NUM_JOINTS)), skeleton=0,
                              inverseBindMatrices=blob.add(column_major, gl.FLOAT, gl.MAT4)))  # fmt: skip

    times = (np.arange(motion.num_frames) / motion.fps).astype(np.float32)
    time_accessor = blob.add(times, gl.FLOAT, gl.SCALAR, bounds=True)
    samplers, channels = [], []
    for j in range(NUM_JOINTS):
        quats = _continuous_quaternions(rotations[:, j]).astype(np.float32)
        samplers.append(gl.AnimationSampler(input=time_accessor, output=blob.add(quats, gl.FLOAT, gl.VEC4), interpolation="LINEAR"))
        channels.append(gl.AnimationChannel(sampler=j, target=gl.AnimationChannelTarget(node=j, path="rotation")))
    samplers.append(gl.AnimationSampler(input=time_accessor, output=blob.add(root.astype(np.float32), gl.FLOAT, gl.VEC3), interpolation="LINEAR"))
    channels.append(gl.AnimationChannel(sampler=NUM_JOINTS, target=gl.AnimationChannelTarget(node=0, path="translation")))
    gltf.animations.append(gl.Animation(name=motion.text or "motion", samplers=samplers, channels=channels))

    gltf.scenes.append(gl.Scene(name="motion", nodes=[0, mesh_node]))
    gltf.scene = 0
    gltf.buffers.append(gl.Buffer(byteLength=len(blob.data)))
    gltf.set_binary_blob(bytes(blob.data))
    return gltf


def write_gltf(motion: Motion, path: str | Path) -> Path:
    """Write ``motion`` as a binary glTF (.glb), atomically."""
    from motionmillion.utils.io import atomic_path

    path = Path(path)
    if path.suffix.lower() != ".glb":
        raise ValueError(f"{path}: a glTF export is written as binary glTF, use a .glb file name")
    gltf = build_gltf(motion)
    with atomic_path(path) as tmp:
        gltf.save_binary(str(tmp))
    return path
