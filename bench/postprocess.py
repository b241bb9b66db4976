"""Benchmark of foot-sliding removal (prints JSON).

Real clips get sliding injected (a slow, smooth sway of each hip's rotation: the feet slide while
the pelvis, spine, arms and head do not move), then ``fix_foot_sliding`` runs. Reported per set:
the evaluation's foot-skating metric (m/s of feet in contact) of the clean clip, the injected
input and the output, its relative drop, how far non-leg joints moved (cm, output vs input), the
consistency of the output (decode_joints vs forward kinematics of decode_rotations, m), the BVH
round trip error (write_bvh -> load_bvh_joints, m) and frames per second.

    python bench/postprocess.py --bvh-glob '/work/scratch/raw/Bandai-Namco-Research-Motiondataset-1/data/*walk*.bvh' --limit 20
    python bench/postprocess.py --npy-dir /work/scratch/datasets/mm/motion_data/vector_272 --limit 50
    python bench/postprocess.py --generated-dir DIR        # generated (T, 272) .npy, no injection
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from motionmillion.evaluation.physical import foot_skating
from motionmillion.motion import decode_joints, decode_rotations, fit_offsets, forward_kinematics
from motionmillion.motion.skeleton import FPS
from motionmillion.postprocess import PostprocessWarning, fix_foot_sliding
from motionmillion.postprocess.sliding import inject_sliding, leg_free_joints


def non_leg_rigid_residual_cm(features: np.ndarray) -> float:
    """How far (cm) the input's own non-leg joints are from FK of its rotations (0 for real clips).

    The output is FK-consistent by construction, so a non-rigid input (a generated motion) moves
    by this much wherever the fix touches it or not.
    """
    joints = decode_joints(features)
    rotations, root = decode_rotations(features)
    fk = forward_kinematics(rotations, root, fit_offsets(joints, rotations))
    free = leg_free_joints()
    return 100 * float(np.linalg.norm(fk[:, free] - joints[:, free], axis=-1).mean())


def consistency_error(features: np.ndarray) -> float:
    joints = decode_joints(features)
    rotations, root = decode_rotations(features)
    return float(np.abs(forward_kinematics(rotations, root, fit_offsets(joints, rotations)) - joints).max())


def bvh_round_trip_error(features: np.ndarray) -> float:
    from motionmillion.motion.bvh import load_bvh_joints, write_bvh

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.bvh"
        write_bvh(path, features, fps=FPS)
        joints, _ = load_bvh_joints(path, rig="smpl", unit_scale=1.0)
    return float(np.abs(joints - decode_joints(features)).max())


def run_set(name: str, clips: list[tuple[str, np.ndarray]], inject: bool) -> dict:
    free = leg_free_joints()
    clean_skate, before, after, non_leg_cm, consistency, bvh_err = [], [], [], [], [], []
    frames, seconds, unchanged, residual_cm = 0, 0.0, [], []
    for i, (clip, features) in enumerate(clips):
        source = inject_sliding(features, seed=i) if inject else features
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PostprocessWarning)
            start = time.perf_counter()
            fixed = fix_foot_sliding(source, source=clip)
            seconds += time.perf_counter() - start
        if caught:
            unchanged.append(clip)
        frames += len(source)
        joints_in, joints_out = decode_joints(source), decode_joints(fixed)
        clean_skate.append(foot_skating(decode_joints(features), FPS))
        before.append(foot_skating(joints_in, FPS))
        after.append(foot_skating(joints_out, FPS))
        non_leg_cm.append(100 * float(np.linalg.norm(joints_out[:, free] - joints_in[:, free], axis=-1).mean()))
        consistency.append(consistency_error(fixed))
        residual_cm.append(non_leg_rigid_residual_cm(source))
        bvh_err.append(bvh_round_trip_error(fixed))
    mean_before, mean_after = float(np.mean(before)), float(np.mean(after))
    return {
        "set": name,
        "clips": len(clips),
        "frames": frames,
        "injected_sliding": inject,
        "foot_skating_clean_m_s": float(np.mean(clean_skate)),
        "foot_skating_before_m_s": mean_before,
        "foot_skating_after_m_s": mean_after,
        "foot_skating_drop": 1.0 - mean_after / mean_before if mean_before > 0 else 0.0,
        "per_clip_drop_min": min((1 - a / b for a, b in zip(after, before, strict=True) if b > 0), default=None),
        "non_leg_joint_change_cm_mean": float(np.mean(non_leg_cm)),
        "non_leg_joint_change_cm_max_clip": float(np.max(non_leg_cm)),
        "input_non_rigidity_non_leg_cm_mean": float(np.mean(residual_cm)),
        "consistency_max_m": float(np.max(consistency)),
        "bvh_round_trip_max_m": float(np.max(bvh_err)),
        "frames_per_second": frames / seconds if seconds > 0 else 0.0,
        "returned_unchanged": unchanged,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bvh-glob", action="append", default=[], help="real BVH clips (clean); sliding is injected")
    parser.add_argument("--npy-dir", type=Path, help="folder of real (T, 272) .npy clips; sliding is injected")
    parser.add_argument("--generated-dir", type=Path, help="folder of generated (T, 272) .npy motions, used as they are")
    parser.add_argument("--limit", type=int, default=20, help="clips per set (a seeded random sample when there are more)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    def sample(paths: list) -> list:
        paths = sorted(paths)
        if len(paths) <= args.limit:
            return paths
        return [paths[i] for i in sorted(rng.choice(len(paths), size=args.limit, replace=False))]

    results = []
    if args.bvh_glob:
        from motionmillion.motion.bvh import bvh_to_features

        paths = sample([p for pattern in args.bvh_glob for p in glob.glob(pattern, recursive=True)])
        results.append(run_set("real_bvh_injected", [(p, bvh_to_features(p)) for p in paths], inject=True))
    if args.npy_dir:
        paths = sample(list(args.npy_dir.rglob("*.npy")))
        results.append(run_set("real_npy_injected", [(str(p), np.load(p).astype(np.float64)) for p in paths], inject=True))
    if args.generated_dir:
        paths = sample(list(args.generated_dir.rglob("*.npy")))
        results.append(run_set("generated", [(str(p), np.load(p).astype(np.float64)) for p in paths], inject=False))
    if not results:
        parser.error("give --bvh-glob, --npy-dir and/or --generated-dir")
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
