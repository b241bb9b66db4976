"""Runs inside Blender (``blender -b --factory-startup --python read_fbx.py -- [--render PNG] IN.fbx ...``):
Blender's own FBX importer reads each file into an empty scene, and every pose bone's world head position
per frame (metres, Y up: the project's axes) goes to ``IN.blender.json`` with the scene's frame rate and
the skinned meshes found. With ``--render``, the first frame of the first file is rendered (Workbench)
from the front-right, the body framed. One Blender start for many files keeps the tests quick.
"""

import json
import sys

import bpy
from mathutils import Vector


def main():
    args = sys.argv[sys.argv.index("--") + 1 :]
    png = None
    if args[0] == "--render":
        png, args = args[1], args[2:]
    for k, fbx_path in enumerate(args):
        read(fbx_path, fbx_path.rsplit(".", 1)[0] + ".blender.json", png if k == 0 else None)


def read(fbx_path, out_path, png):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.import_scene.fbx(filepath=fbx_path)
    scene = bpy.context.scene
    armatures = [o for o in scene.objects if o.type == "ARMATURE"]
    meshes = [o for o in scene.objects if o.type == "MESH"]
    (armature,) = armatures
    action = armature.animation_data.action
    first, last = (int(round(x)) for x in action.frame_range)
    names = [b.name for b in armature.pose.bones]
    frames = []
    for frame in range(first, last + 1):
        scene.frame_set(frame)
        world = armature.matrix_world
        frames.append([list(_project_axes(world @ b.head)) for b in armature.pose.bones])
    skinned = [m.name for m in meshes if any(mod.type == "ARMATURE" and mod.object == armature for mod in m.modifiers)]
    rest = {b.name: list(_project_axes(armature.matrix_world @ b.head_local)) for b in armature.data.bones}
    result = {
        "fps": scene.render.fps / scene.render.fps_base,
        "first_frame": first,
        "frames": len(frames),
        "names": names,
        "positions": frames,
        "rest": rest,
        "skinned_meshes": skinned,
        "vertices": sum(len(m.data.vertices) for m in meshes),
        "actions": [a.name for a in bpy.data.actions],
    }
    if png:
        scene.frame_set(first)
        render(scene, meshes, png)
    with open(out_path, "w", encoding="utf-8") as handle:
        json.dump(result, handle)


def _project_axes(v):
    return v.x, v.z, -v.y  # Blender (Z up, facing -Y) -> project (Y up, facing +Z)


def render(scene, meshes, png_path):
    depsgraph = bpy.context.evaluated_depsgraph_get()
    points = []
    for mesh in meshes:
        evaluated = mesh.evaluated_get(depsgraph)
        points += [evaluated.matrix_world @ v.co for v in evaluated.data.vertices]
    low = Vector([min(p[i] for p in points) for i in range(3)])
    high = Vector([max(p[i] for p in points) for i in range(3)])
    centre, size = (low + high) / 2, max((high - low).length, 0.5)
    camera_data = bpy.data.cameras.new("camera")
    camera_data.lens = 50
    camera = bpy.data.objects.new("camera", camera_data)
    scene.collection.objects.link(camera)
    direction = Vector((1.0, -2.0, 0.6)).normalized()  # front-right, a little above (the body faces -Y)
    camera.location = centre + direction * size * 2.2
    camera.rotation_euler = (centre - camera.location).to_track_quat("-Z", "Y").to_euler()
    scene.camera = camera
    floor = bpy.data.meshes.new("floor")
    r = size * 3
    floor.from_pydata([(centre.x - r, centre.y - r, 0), (centre.x + r, centre.y - r, 0),
                       (centre.x + r, centre.y + r, 0), (centre.x - r, centre.y + r, 0)], [], [(0, 1, 2, 3)])
    scene.collection.objects.link(bpy.data.objects.new("floor", floor))
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "STUDIO"
    scene.display.shading.color_type = "MATERIAL"
    scene.display.shading.show_shadows = True
    scene.render.resolution_x, scene.render.resolution_y = 640, 640
    scene.render.filepath = png_path
    scene.render.image_settings.file_format = "PNG"
    bpy.ops.render.render(write_still=True)


try:
    main()
except BaseException as err:
    print(f"MOTIONMILLION-ERROR {type(err).__name__}: {err}", flush=True)
    sys.exit(1)
