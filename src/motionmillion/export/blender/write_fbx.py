"""Runs inside Blender (``blender -b --factory-startup --python write_fbx.py -- SPEC.json OUT.fbx``).

Builds, from the JSON that :mod:`motionmillion.export.fbx` writes, an armature in its rest pose, the
mannequin mesh skinned to it (each vertex weighted 1.0 to one bone) and one action at the motion's
frame rate, then writes them with Blender's own FBX exporter. Only Blender's Python is available here
(no numpy, no motionmillion), so the spec holds plain lists and the maths uses ``mathutils``.

Coordinates: the spec is in metres, Y up, the body facing +Z (the project's convention). The armature
holds them as they are, scaled to centimetres, and its object is turned +90 degrees about X so Blender
(Z up) shows it upright; the exporter's own axis change (axis_up='Y', axis_forward='-Z') undoes exactly
that turn, so the FBX's armature node has no rotation and no scale: Y up, facing +Z, in centimetres
(the scene's unit scale is 0.01, so the file's UnitScaleFactor is 1 cm, the unit Unity, Unreal and Maya
expect, rather than metres with a x100 scale on the root node).

Bones point from their joint to their child (the convention of the rigs animators use), so their rest
frames M are not the identity. A spec rotation R (local, in the parent joint's world-aligned rest frame)
becomes the pose bone's rotation M^T R M, and a translation t of the translated joint becomes the
location M^T (t - rest offset); forward kinematics of the pose bones is then the spec's.

Prints one line ``MOTIONMILLION {...}`` with the seconds spent building and exporting.
"""

import json
import math
import sys
import time

import bpy
from mathutils import Matrix, Vector

UNITS = 100.0  # centimetres per metre
MIN_BONE = 1.0  # centimetres: the length of a bone whose joint has no child to point at


def to_blender(p):
    return Vector(p) * UNITS


def build_armature(spec):
    names, parents, rest = spec["names"], spec["parents"], [to_blender(p) for p in spec["rest_positions"]]
    data = bpy.data.armatures.new(spec["armature"])
    armature = bpy.data.objects.new(spec["armature"], data)
    armature.rotation_euler = (math.pi / 2, 0.0, 0.0)
    bpy.context.scene.collection.objects.link(armature)
    bpy.context.view_layer.objects.active = armature
    bpy.ops.object.mode_set(mode="EDIT")
    bones = []
    for j, name in enumerate(names):
        bone = data.edit_bones.new(name)
        kids = [k for k, p in enumerate(parents) if p == j]
        bone.head = rest[j]
        if kids:  # towards the child joints' mean (the spine between the hips, the chest between collars)
            target = sum((rest[k] for k in kids), Vector()) / len(kids)
        else:
            target = rest[j] + (rest[j] - rest[parents[j]]) * 0.3 if parents[j] >= 0 else rest[j] + Vector((0.0, MIN_BONE * 10, 0.0))
        if (target - rest[j]).length < MIN_BONE:  # e.g. a ground root right under the hips
            target = rest[j] + Vector((0.0, MIN_BONE * 10, 0.0))
        bone.tail = target
        bone.roll = 0.0
        if parents[j] >= 0:
            bone.parent = bones[parents[j]]
            bone.use_connect = False  # keeps the translated joint free to move
        bones.append(bone)
    bpy.ops.object.mode_set(mode="OBJECT")
    return armature


def build_mesh(spec, armature):
    mesh_spec = spec["mesh"]
    mesh = bpy.data.meshes.new("mannequin")
    verts = [tuple(to_blender(p)) for p in mesh_spec["positions"]]
    mesh.from_pydata(verts, [], mesh_spec["triangles"])
    mesh.update()
    for polygon in mesh.polygons:
        polygon.use_smooth = True
    material = bpy.data.materials.new("mannequin")
    material.diffuse_color = (0.72, 0.74, 0.78, 1.0)
    mesh.materials.append(material)
    body = bpy.data.objects.new("mannequin", mesh)
    bpy.context.scene.collection.objects.link(body)
    body.parent = armature
    by_joint = {}
    for vertex, joint in enumerate(mesh_spec["vertex_joints"]):
        by_joint.setdefault(joint, []).append(vertex)
    for joint, vertices in by_joint.items():
        body.vertex_groups.new(name=spec["names"][joint]).add(vertices, 1.0, "REPLACE")
    modifier = body.modifiers.new("armature", "ARMATURE")
    modifier.object = armature
    return body


def animate(spec, armature):
    scene = bpy.context.scene
    fps = spec["fps"]
    scene.render.fps = max(1, round(fps))
    scene.render.fps_base = scene.render.fps / fps
    frames = len(spec["translations"])
    scene.frame_start, scene.frame_end = 0, frames - 1
    action = bpy.data.actions.new(spec["action"])
    armature.animation_data_create().action = action
    translated = spec["translated"]
    rest_offset = to_blender(spec["offsets"][translated])
    for j, name in enumerate(spec["names"]):
        bone = armature.pose.bones[name]
        bone.rotation_mode = "QUATERNION"
        m = bone.bone.matrix_local.to_3x3()
        m_t = m.transposed()
        quats, previous = [], None
        for frame_rotations in spec["rotations"]:
            q = (m_t @ Matrix(frame_rotations[j]) @ m).to_quaternion()
            if previous is not None and q.dot(previous) < 0:
                q.negate()  # neighbouring keys interpolate the short way
            quats.append(q)
            previous = q
        channels = [("rotation_quaternion", [[q[i] for q in quats] for i in range(4)])]
        if j == translated:
            locations = [m_t @ (to_blender(t) - rest_offset) for t in spec["translations"]]
            channels.append(("location", [[v[i] for v in locations] for i in range(3)]))
        for prop, values in channels:
            for index, series in enumerate(values):
                curve = action.fcurves.new(f'pose.bones["{name}"].{prop}', index=index, action_group=name)
                curve.keyframe_points.add(frames)
                curve.keyframe_points.foreach_set("co", [x for f, v in enumerate(series) for x in (f, v)])
                curve.keyframe_points.foreach_set("interpolation", [1] * frames)  # LINEAR
                curve.update()
    return action


def main():
    spec_path, out_path = sys.argv[sys.argv.index("--") + 1 :][:2]
    started = time.perf_counter()
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    bpy.context.scene.unit_settings.scale_length = 1.0 / UNITS
    for obj in list(bpy.data.objects):  # --factory-startup's cube, camera and light
        bpy.data.objects.remove(obj)
    armature = build_armature(spec)
    build_mesh(spec, armature)
    animate(spec, armature)
    built = time.perf_counter()
    result = bpy.ops.export_scene.fbx(
        filepath=out_path,
        object_types={"ARMATURE", "MESH"},
        use_mesh_modifiers=False,  # the mesh in its bind pose; the skin deforms it
        add_leaf_bones=False,
        primary_bone_axis="Y",
        secondary_bone_axis="X",
        armature_nodetype="NULL",
        bake_anim=True,
        bake_anim_use_all_bones=True,
        bake_anim_use_nla_strips=False,
        bake_anim_use_all_actions=False,
        bake_anim_force_startend_keying=True,
        bake_anim_step=1.0,
        bake_anim_simplify_factor=0.0,  # every frame kept exactly (the default drops keys it finds redundant)
        apply_unit_scale=True,
        apply_scale_options="FBX_SCALE_NONE",
        global_scale=1.0,
        axis_forward="-Z",
        axis_up="Y",
        path_mode="AUTO",
    )
    if "FINISHED" not in result:
        raise SystemExit(f"Blender's FBX exporter did not finish: {result}")
    done = time.perf_counter()
    print("MOTIONMILLION " + json.dumps({"build_s": built - started, "export_s": done - built}), flush=True)


try:
    main()
except BaseException as err:  # exit non-zero with one line: Blender itself would exit 0 after a traceback
    print(f"MOTIONMILLION-ERROR {type(err).__name__}: {err}", flush=True)
    sys.exit(1)
