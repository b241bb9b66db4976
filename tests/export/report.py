"""Print the export's measured figures as one JSON (the same readers and measures as the tests).

    .venv/bin/python tests/export/report.py

Validator issue counts per file; three.js joint error (mm, max over frames and joints) against
Motion.joints for real clips and the pipeline's (consistent) motions, against the BVH's own skeleton
for the raw decoded one; per rig and reader, the largest mapped-bone angle (degrees) and lowest-foot-height
difference (cm) over all frames of all motions.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from export_readers import GENERATED, REAL_CLIPS, node_missing, run_node  # noqa: E402
from export_measure import read_positions_bvhio, read_positions_project, read_positions_threejs, rig_errors  # noqa: E402

from motionmillion.motion import JOINT_NAMES, Motion  # noqa: E402


def main() -> None:
    real = {name: Motion.load(path, source_fps=fps) for name, (path, fps) in REAL_CLIPS.items()}
    generated = {name: Motion(np.load(path).astype(np.float64)) for name, path in GENERATED.items()}
    raw = {name: m for name, m in generated.items() if "raw" in name}
    consistent = {name: m for name, m in generated.items() if "raw" not in name}
    report: dict = {"node": node_missing() or "ok"}
    with tempfile.TemporaryDirectory() as folder:
        groups = {"real": real, "generated_raw": raw, "generated_pipeline": consistent}
        files = {name: str(m.to_gltf(Path(folder) / f"{name}.glb")) for group in groups.values() for name, m in group.items()}
        if node_missing() is None:
            report["validator"] = {Path(r["path"]).stem: {k: r[k] for k in ("errors", "warnings", "infos", "hints")}
                                   for r in run_node("validate.mjs", *files.values())}  # fmt: skip
            report["threejs_max_mm"] = {}
            for group, motions in groups.items():
                for name, motion in motions.items():
                    (out,) = run_node("joints.mjs", files[name], ",".join(JOINT_NAMES))
                    reference = motion.rigid_pose()[3] if group == "generated_raw" else motion.joints
                    report["threejs_max_mm"][name] = round(float(np.abs(np.array(out["positions"]) - reference).max()) * 1000, 6)
        report["rigs"] = {}
        for rig in ("smpl", "mixamo", "bandai", "cmu"):
            units = 1.0 if rig == "smpl" else 100.0
            readers = {"project": read_positions_project, "bvhio": read_positions_bvhio}
            if node_missing() is None:
                readers["threejs"] = read_positions_threejs
            for reader_name, reader in readers.items():
                for group, motions in (("real", real), ("generated", generated)):
                    worst = {"bone_degrees": 0.0, "foot_height_cm": 0.0}
                    for name, motion in motions.items():
                        path = motion.to_bvh(Path(folder) / f"{name}_{rig}.bvh", rig=rig)
                        errors = rig_errors(motion, path, rig, reader, units)
                        worst["bone_degrees"] = max(worst["bone_degrees"], round(errors["bone_degrees"], 4))
                        worst["foot_height_cm"] = max(worst["foot_height_cm"], round(errors["foot_height_m"] * 100, 5))
                    report["rigs"][f"{rig}/{reader_name}/{group}"] = worst
    print(json.dumps(report))


if __name__ == "__main__":
    main()
