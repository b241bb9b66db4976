"""Import all cmu-cc takes and measure the import; prints one JSON object.

    OMP_NUM_THREADS=1 .venv/bin/python bench/cmu_cc_import.py [--archive ../shared/data/cmu-cc/cmu-cc.tar.xz]
        [--text-pool ../shared/data/text] [--keep DIR]

Figures: takes imported / failed, clips written, wall time; per-take floor heights; round trip of every
stored window (1) its 272 features decoded vs the FK joints of the source frames (floored per take,
canonicalised; leading rest-pose frames dropped as the importer does), (2) written as BVH by ``write_bvh`` and read back by ``load_bvh_joints``; the lowest joint
per window (0 on the ground, higher for windows spent off it); takes with HumanML3D captions; measured
dribbling hands.
"""

from __future__ import annotations

import argparse
import json
import logging
import tarfile
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

import numpy as np

from motionmillion.data.importers import import_bvh
from motionmillion.data.recipes import leading_pose_jumps, take_floor
from motionmillion.data.records import load_records
from motionmillion.motion import decode_joints, rotations_from_positions
from motionmillion.motion.bvh import write_bvh
from motionmillion.motion.rig_mapping import load_bvh_joints
from motionmillion.motion.representation import canonicalize

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", type=Path, default=SHARED / "cmu-cc" / "cmu-cc.tar.xz")
    parser.add_argument("--text-pool", type=Path, default=SHARED / "text")
    parser.add_argument("--keep", type=Path, default=None, help="write the dataset here (default: a temp folder)")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="cmu_cc_"))
    with tarfile.open(args.archive) as archive:
        archive.extractall(work, filter="data")
    dataset = args.keep or work / "dataset"
    started = time.perf_counter()
    report = import_bvh(work / "cmu-cc", dataset, "cmu-cc", workers=1, progress=False, text_pool=args.text_pool)
    wall = time.perf_counter() - started

    records = [r for r in load_records(dataset) if r["recipe"] == "cmu-cc"]
    representation, bvh, lowest, floors, largest_step = [], [], [], [], []
    for record in records:
        joints, _ = load_bvh_joints(record["source"], rig="cc-base")
        joints = joints[leading_pose_jumps(joints):]
        rotations = rotations_from_positions(joints)
        floor = take_floor(joints)
        floors.append(floor)
        for clip in record["clips"]:
            start, end = clip["start"], clip["start"] + clip["frames"]
            expected, _ = canonicalize(joints[start:end], rotations[start:end], floor)
            features = np.load(dataset / "motion_data/vector_272" / f"{clip['name']}.npy")
            decoded = decode_joints(features)
            representation.append(np.linalg.norm(decoded - expected, axis=-1).mean())
            lowest.append(decoded[..., 1].min())
            largest_step.append(np.linalg.norm(np.diff(decoded, axis=0), axis=-1).max())
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                write_bvh(work / "roundtrip.bvh", features)
            back, _ = load_bvh_joints(work / "roundtrip.bvh", rig="smpl")
            bvh.append(np.linalg.norm(back - decoded, axis=-1).mean())

    def mm(values: list[float]) -> dict:
        return {"mean": round(1000 * float(np.mean(values)), 4), "max": round(1000 * float(np.max(values)), 4)}

    print(json.dumps({
        "takes_imported": len(report.imported), "takes_failed": len(report.failed), "failures": report.failed,
        "takes_skipped": len(report.skipped), "clips_written_incl_mirrors": report.clips_written,
        "import_wall_seconds": round(wall, 1),
        "windows": len(representation), "movements": dict(Counter(r["label"]["content"] for r in records)),
        "take_floor_m": {"min": round(min(floors), 3), "max": round(max(floors), 3)},
        "representation_roundtrip_mpjpe_mm": mm(representation), "bvh_roundtrip_mpjpe_mm": mm(bvh),
        "lowest_joint_per_window_m": {"min": round(float(np.min(lowest)), 3), "median": round(float(np.median(lowest)), 3),
                                      "max": round(float(np.max(lowest)), 3)},
        "largest_joint_step_per_frame_m": round(float(np.max(largest_step)), 3),
        "windows_with_a_joint_step_over_0.4_m": int(np.sum(np.array(largest_step) > 0.4)),  # 12 m/s: glitch or ballet
        "takes_with_leading_frames_dropped": sum(bool(r["notes"]) for r in records),
        "takes_with_humanml3d_captions": sum(bool(r["label"].get("human")) for r in records),
        "dribble_hands": dict(Counter(c.get("dribble_hand") for r in records for c in r["clips"] if "dribble_hand" in c)),
    }, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
