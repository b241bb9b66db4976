"""Files animators use: glTF 2.0 and FBX with a skinned mannequin, and BVH retargeted onto other rigs."""

from motionmillion.export.fbx import write_fbx
from motionmillion.export.gltf import build_gltf, write_gltf
from motionmillion.export.retarget import describe_rigs, export_rigs, retarget, write_rig_bvh

__all__ = ["build_gltf", "describe_rigs", "export_rigs", "retarget", "write_fbx", "write_gltf", "write_rig_bvh"]
