"""``motionmillion export``: a motion file -> glTF, FBX, BVH on any known rig, joint positions, 272 features.

Reads every motion file the project knows through :meth:`motionmillion.motion.Motion.load`.
Heavy libraries are imported inside the command so ``motionmillion --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path

import typer

from motionmillion.errors import UsageError


def export_command(
    motion: Path | None = typer.Argument(None, help="Motion file: .npy (T,272 features or T,22,3 joints) or .bvh."),
    gltf: Path | None = typer.Option(None, "--gltf", help="Write a binary glTF (.glb): a skinned mannequin playing the motion."),
    fbx: Path | None = typer.Option(None, "--fbx", help="Write an FBX (skinned mannequin on the rig given by --rig, "
                                    "centimetres; written by Blender run headless: needs `blender` on PATH)."),
    bvh: Path | None = typer.Option(None, "--bvh", help="Write a BVH on the rig given by --rig."),
    rig: str = typer.Option("smpl", "--rig", help="Rig of the --bvh and --fbx outputs: smpl, mixamo, bandai or cmu (see --list-rigs)."),
    joints: Path | None = typer.Option(None, "--joints", help="Write joint positions (T,22,3) as .npy."),
    features: Path | None = typer.Option(None, "--features", help="Write the (T,272) features as .npy."),
    fps: float | None = typer.Option(None, help="Frame rate of a .npy input (default 30)."),
    unit_scale: float = typer.Option(1.0, help="File units per metre of a --rig smpl BVH (100 writes centimetres)."),
    input_rig: str | None = typer.Option(None, "--input-rig", help="Rig of a .bvh input (bandai, cmu-daz, mixamo, smpl); default: detect."),
    source_fps: float | None = typer.Option(None, help="True frame rate of a .bvh input, overriding its header."),
    list_rigs: bool = typer.Option(False, "--list-rigs", help="List the rigs --rig accepts and exit."),
) -> None:
    """Convert a motion to glTF, FBX or BVH (SMPL, Mixamo, Bandai or CMU rig), joint positions and/or 272 features."""
    import numpy as np

    from motionmillion.export import describe_rigs, write_gltf
    from motionmillion.export.retarget import resolve_rig_name, retarget
    from motionmillion.motion import Motion
    from motionmillion.motion.bvh import write_bvh
    from motionmillion.utils.io import atomic_save_npy

    if list_rigs:
        for name, description in describe_rigs():
            typer.echo(f"{name:8s} {description}")
        return
    if motion is None:
        raise UsageError("give a MOTION file (or --list-rigs)")
    if gltf is None and fbx is None and bvh is None and joints is None and features is None:
        raise UsageError("give at least one of --gltf, --fbx, --bvh, --joints, --features")
    rig_name = resolve_rig_name(rig)  # an unknown rig fails before any reading, listing the known ones
    if fbx is not None:
        from motionmillion.export.fbx import require_blender

        if fbx.suffix.lower() != ".fbx":
            raise UsageError(f"--fbx {fbx}: use a .fbx file name")
        require_blender()
    if unit_scale != 1.0 and rig_name != "smpl":
        raise UsageError(f"--unit-scale applies to --rig smpl only; the {rig_name} rig has its own unit")
    loaded = Motion.load(motion, fps=fps, rig=input_rig, source_fps=source_fps)
    if gltf is not None:
        typer.echo(f"wrote {write_gltf(loaded, gltf)}")
    if fbx is not None:
        typer.echo(f"wrote {loaded.to_fbx(fbx, rig=rig_name)} ({rig_name} rig)")
    if bvh is not None:
        if rig_name == "smpl":
            write_bvh(bvh, loaded.features, fps=loaded.fps, unit_scale=unit_scale)
        else:
            retarget(loaded, rig_name).write_bvh(bvh)
        typer.echo(f"wrote {bvh} ({rig_name} rig)")
    if joints is not None:
        atomic_save_npy(joints, loaded.joints.astype(np.float32))
        typer.echo(f"wrote {joints}")
    if features is not None:
        atomic_save_npy(features, loaded.features.astype(np.float32))
        typer.echo(f"wrote {features}")
