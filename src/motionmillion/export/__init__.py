"""Files animators use: glTF 2.0 with a skinned mannequin, and BVH retargeted onto other rigs."""

from motionmillion.export.gltf import build_gltf, write_gltf
from motionmillion.export.retarget import describe_rigs, export_rigs, retarget, write_rig_bvh

__all__ = ["build_gltf", "describe_rigs", "export_rigs", "retarget", "write_gltf", "write_rig_bvh"]
