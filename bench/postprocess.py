"""Benchmark of foot-sliding removal (prints JSON).

Real clips get sliding injected, then ``fix_foot_sliding`` runs. Two injections (``--inject``):
``hips``, a slow, smooth sway of each hip's rotation (the feet slide while the pelvis, spine, arms
and head do not move), and ``glide``, a whole-body drift of 5-10 cm/s (the pose unchanged, the
planted feet sliding with the body). Reported per set: the evaluation's foot-skating metric (m/s of
feet in contact) of the clean clip, the injected input and the output, its relative drop, how far
non-leg joints moved (cm, output vs input: in the world and relative to the pelvis), how far the
output is from the clean clip (cm, injected sets), the consistency of the output (decode_joints vs
forward kinematics of decode_rotations, m), the BVH round trip error (write_bvh -> load_bvh_joints,
m) and frames per second.

    python bench/postprocess.py --bvh-glob '/work/scratch/raw/Bandai-Namco-Research-Motiondataset-1/data/*walk*.bvh' --limit 20
    python bench/postprocess.py --npy-dir /work/scratch/datasets/mm/motion_data/vector_272 --limit 50
    python bench/postprocess.py --generated-dir DIR        # generated (T, 272) .npy, no injection
    python bench/postprocess.py --npy-dir DATASET/motion_data/vector_272 --inject glide --limit 50
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
from motionmillion.postprocess.sliding import inject_glide, inject_sliding, leg_free_joints

# Whole-body drift speeds (m/s) of the glide injection, drawn per clip.
GLIDE_SPEEDS = (0.05, 0.10)


def inject(features: np.ndarray, kind: str | None, seed: int) -> np.ndarray:
    if kind == "hips":
        return inject_sliding(features, seed=seed)
    if kind == "glide":
        return inject_glide(features, speed=float(np.random.default_rng(seed).uniform(*GLIDE_SPEEDS)), seed=seed)
    return features


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
    from motionmillion.motion.bvh import write_bvh
    from motionmillion.motion.rig_mapping import load_bvh_joints

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.bvh"
        write_bvh(path, features, fps=FPS)
        joints, _ = load_bvh_joints(path, rig="smpl", unit_scale=1.0)
    return float(np.abs(joints - decode_joints(features)).max())


def run_set(name: str, clips: list[tuple[str, np.ndarray]], injection: str | None) -> dict:
    free = leg_free_joints()
    clean_skate, before, after, non_leg_cm, consistency, bvh_err = [], [], [], [], [], []
    frames, seconds, unchanged, residual_cm, relative_cm, to_clean_cm, injected_cm = 0, 0.0, [], [], [], [], []
    for i, (clip, features) in enumerate(clips):
        source = inject(features, injection, seed=i)
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
        relative = (joints_out[:, free] - joints_out[:, :1]) - (joints_in[:, free] - joints_in[:, :1])
        relative_cm.append(100 * float(np.linalg.norm(relative, axis=-1).mean()))
        clean = decode_joints(features)
        to_clean_cm.append(100 * float(np.linalg.norm(joints_out - clean, axis=-1).mean()))
        injected_cm.append(100 * float(np.linalg.norm(joints_in - clean, axis=-1).mean()))
        consistency.append(consistency_error(fixed))
        residual_cm.append(non_leg_rigid_residual_cm(source))
        bvh_err.append(bvh_round_trip_error(fixed))
    mean_before, mean_after = float(np.mean(before)), float(np.mean(after))
    return {
        "set": name,
        "clips": len(clips),
        "frames": frames,
        "injected": injection,
        "foot_skating_clean_m_s": float(np.mean(clean_skate)),
        "foot_skating_before_m_s": mean_before,
        "foot_skating_after_m_s": mean_after,
        "foot_skating_drop": 1.0 - mean_after / mean_before if mean_before > 0 else 0.0,
        "per_clip_drop_min": min((1 - a / b for a, b in zip(after, before, strict=True) if b > 0), default=None),
        "non_leg_joint_change_cm_mean": float(np.mean(non_leg_cm)),
        "non_leg_joint_change_cm_max_clip": float(np.max(non_leg_cm)),
        "non_leg_change_relative_to_pelvis_cm_mean": float(np.mean(relative_cm)),
        "non_leg_change_relative_to_pelvis_cm_max_clip": float(np.max(relative_cm)),
        "input_vs_clean_cm_mean": float(np.mean(injected_cm)) if injection else None,
        "output_vs_clean_cm_mean": float(np.mean(to_clean_cm)) if injection else None,
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
    parser.add_argument("--inject", choices=["hips", "glide", "both"], default="both", help="sliding injected into real clips")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    injections = ["hips", "glide"] if args.inject == "both" else [args.inject]

    def sample(paths: list) -> list:
        paths = sorted(paths)
        if len(paths) <= args.limit:
            return paths
        return [paths[i] for i in sorted(rng.choice(len(paths), size=args.limit, replace=False))]

    results = []
    if args.bvh_glob:
        from motionmillion.motion.rig_mapping import bvh_to_features

        paths = sample([p for pattern in args.bvh_glob for p in glob.glob(pattern, recursive=True)])
        clips = [(p, bvh_to_features(p)) for p in paths]
        results += [run_set(f"real_bvh_{kind}", clips, kind) for kind in injections]
    if args.npy_dir:
        paths = sample(list(args.npy_dir.rglob("*.npy")))
        clips = [(str(p), np.load(p).astype(np.float64)) for p in paths]
        results += [run_set(f"real_npy_{kind}", clips, kind) for kind in injections]
    if args.generated_dir:
        paths = sample(list(args.generated_dir.rglob("*.npy")))
        results.append(run_set("generated", [(str(p), np.load(p).astype(np.float64)) for p in paths], None))
    if not results:
        parser.error("give --bvh-glob, --npy-dir and/or --generated-dir")
    json.dump(results, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
