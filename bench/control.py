"""Keyframes, paths, in-betweening and edits (issue 25) on real test-split clips; prints one JSON object.

    python bench/control.py --data DATASET [--model default] [--clips 50] [--paths 30] [--threads 1]

DATASET is a MotionMillion dataset folder, e.g. built with
``motionmillion data import-bvh ../shared/data/bandai-namco/<extracted>/ --recipe bandai --out DATASET``;
its test split (``split/version1/t2m_60_300/test.txt``) gives the clips and their first captions.

- inbetween: each test clip's first and last second given, its true middle length asked, prompt = its
  caption. `after` unchanged (max joint difference, mm); the largest joint step within 5 frames of each
  join over the clip's own inner 99th percentile step; jitter and foot skating of the middle over the real
  middle's; mean joint error against the real middle. Beside it the baseline "linear root + rotation slerp"
  between the last frame before and the first after, on the same metrics.
- keyframes: a test clip's pose at 1-3 s as a full-body key in a 4-6 s motion for its caption; the
  root-relative and pelvis errors at the key, the largest step within 5 frames of it over the motion's inner
  p99 step elsewhere; end-effector keys (right wrist, left foot) taken from the same clips.
- paths: lines, L-turns, S-curves and circles (radius 1-3 m) at walking (1.3 m/s) and running (3 m/s) speed,
  5 s; pelvis mean and max error; foot skating over the real clips' (walks and runs of the test split).
- edits: a range [1 s, 2.5 s) of each clip re-prompted ("a person jumps"): frames outside unchanged, join
  steps; upper-body edits "a person waves the right hand" / "raises both hands" / "punches": legs and root
  unchanged, and does the wrist go above the head (wave/raise) or 0.45 m in front of the pelvis (punch).
- cost: each constrained call's wall time over the unconstrained call for the same prompt, length and seed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from motionmillion import Keyframe, Motion
from motionmillion.evaluation.physical import foot_skating, jitter
from motionmillion.motion.kinematics import forward_kinematics, joint_steps
from motionmillion.motion.consistency import fit_skeleton
from motionmillion.motion.skeleton import LEG_JOINTS
from motionmillion.pipeline import MotionPipeline
from motionmillion.pipeline.control import placed, resample, world
from motionmillion.pipeline.requests import SPRINT_SPEED

sys.path.insert(0, str(Path(__file__).resolve().parent))
from movement_checks import punch  # noqa: E402

FPS = 30.0
LOWER = [0, *LEG_JOINTS]


def test_clips(data: Path, limit: int) -> list[tuple[str, np.ndarray, str]]:
    names = (data / "split/version1/t2m_60_300/test.txt").read_text().split()
    clips = []
    for name in names[:limit]:
        features = np.load(data / "motion_data/vector_272" / f"{name}.npy").astype(np.float64)
        caption = (data / "texts" / f"{name}.txt").read_text().splitlines()[0].split("#")[0].strip()
        clips.append((name, features, caption))
    return clips


def inner_p99(joints: np.ndarray) -> float:
    return float(np.percentile(joint_steps(joints), 99))


def join_step(joints: np.ndarray, frame: int) -> float:
    steps = joint_steps(joints)
    return float(steps[max(0, frame - 5) : min(len(steps), frame + 5)].max())


def baseline_inbetween(before: np.ndarray, after: np.ndarray, gap: int) -> np.ndarray:
    """Joints of before, a linear-root + rotation-slerp middle, after (each on its own skeleton)."""
    b_rot, b_root = world(before)
    a_rot, a_root = world(after)
    rot, root = resample(np.stack([b_rot[-1], a_rot[0]]), np.stack([b_root[-1], a_root[0]]), gap + 2)
    middle = forward_kinematics(rot[1:-1], root[1:-1], fit_skeleton(before))
    return np.concatenate([Motion(before).joints, middle, Motion(after).joints])


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b > 0 else float("nan")


def summary(values: list[float], target: float | None = None, below: bool = True) -> dict:
    out = {"median": round(statistics.median(values), 4), "max": round(max(values), 4), "n": len(values)}
    if target is not None:
        out["within_target"] = round(sum((v <= target) if below else (v >= target) for v in values) / len(values), 3)
    return out


def bench_inbetween(pipe, clips) -> dict:
    rows = {k: [] for k in ("after_mm", "join", "jitter", "skating", "mpjpe", "base_join", "base_jitter",
                            "base_skating", "base_mpjpe", "real_jitter", "real_skating")}  # fmt: skip
    for i, (name, features, caption) in enumerate(clips):
        n = len(features)
        gap = n - 60
        if gap < pipe.frames_per_token:
            continue
        before, after = features[:30], placed(features, n - 30)
        real = Motion(features).joints
        m = pipe.inbetween(Motion(before), Motion(after), seconds=gap / FPS, prompt=caption, seed=i)
        start, end = m.meta["generated"]
        joints = m.joints
        p99 = inner_p99(real)
        base = baseline_inbetween(before, after, gap)
        rows["after_mm"].append(1000 * float(np.abs(joints[end:] - real[n - 30 :]).max()))
        rows["join"].append(max(join_step(joints, start), join_step(joints, end)) / p99)
        rows["base_join"].append(max(join_step(base, start), join_step(base, end)) / p99)
        for key, motion in (("", joints), ("base_", base), ("real_", real)):
            middle = motion[start:end]
            rows[f"{key}jitter"].append(jitter(middle, FPS))
            rows[f"{key}skating"].append(foot_skating(middle, FPS))
            if key != "real_":
                rows[f"{key}mpjpe"].append(float(np.linalg.norm(middle - real[start:end], axis=-1).mean()))
    real_jitter, real_skating = np.mean(rows["real_jitter"]), np.mean(rows["real_skating"])
    return {
        "clips": len(rows["after_mm"]),
        "after_unchanged_mm": summary(rows["after_mm"], 0.1),
        "join_step_over_inner_p99": summary(rows["join"], 1.5),
        "jitter_over_real": ratio(np.mean(rows["jitter"]), real_jitter),
        "foot_skating_over_real": ratio(np.mean(rows["skating"]), real_skating),
        "mean_joint_error_vs_real_middle_m": round(float(np.mean(rows["mpjpe"])), 4),
        "baseline_linear_root_slerp": {
            "join_step_over_inner_p99": summary(rows["base_join"], 1.5),
            "jitter_over_real": ratio(np.mean(rows["base_jitter"]), real_jitter),
            "foot_skating_over_real": ratio(np.mean(rows["base_skating"]), real_skating),
            "mean_joint_error_vs_real_middle_m": round(float(np.mean(rows["base_mpjpe"])), 4),
        },
    }


def bench_keyframes(pipe, clips, rng) -> dict:
    full = {"root_relative_m": [], "pelvis_m": [], "key_step": [], "cost": []}
    effector = {"right_wrist": [], "left_foot": []}
    for i, (name, features, caption) in enumerate(clips):
        real = Motion(features).joints
        if len(real) < 2 * FPS:
            continue
        key_time = float(rng.uniform(1.0, min(3.0, len(real) / FPS - 0.1)))
        seconds = float(rng.uniform(max(4.0, key_time + 1.0), 6.0))
        frame = round(key_time * FPS)
        started = time.perf_counter()
        m = pipe(caption, seconds=seconds, seed=i, keyframes=[Keyframe(key_time, real[frame])])[0]
        constrained = time.perf_counter() - started
        started = time.perf_counter()
        pipe(caption, seconds=seconds, seed=i)
        full["cost"].append(constrained / (time.perf_counter() - started))
        error = m.meta["keyframe_errors"][0]
        full["root_relative_m"].append(error["root_relative_mean_m"])
        full["pelvis_m"].append(error["pelvis_m"])
        steps = joint_steps(m.joints)
        away = np.ones(len(steps), dtype=bool)
        away[max(0, error["frame"] - 10) : error["frame"] + 10] = False
        full["key_step"].append(join_step(m.joints, error["frame"]) / float(np.percentile(steps[away], 99)))
        for joint, index in (("right_wrist", 21), ("left_foot", 10)):
            # The clip's own effector position, relative to where a plain motion's pelvis is at that time.
            plain = pipe(caption, seconds=seconds, seed=i)[0].joints
            goal = plain[frame, 0] + (real[frame, index] - real[frame, 0])
            k = pipe(caption, seconds=seconds, seed=i, keyframes=[Keyframe(key_time, {joint: goal})])[0]
            effector[joint].append(k.meta["keyframe_errors"][0]["max_m"])
    return {
        "full_body": {"root_relative_mean_m": summary(full["root_relative_m"], 0.02),
                      "pelvis_m": summary(full["pelvis_m"], 0.05),
                      "step_near_key_over_inner_p99": summary(full["key_step"], 1.5),
                      "cost_over_unconstrained": summary(full["cost"], 3.0)},  # fmt: skip
        "end_effector_m": {joint: summary(v, 0.02) for joint, v in effector.items()},
    }


def make_paths(count: int, rng) -> list[tuple[str, float, np.ndarray]]:
    """(shape, speed, (n, 3) points of time, x, z) for 5 s: lines, L-turns, S-curves, circles."""
    seconds, out = 5.0, []
    shapes = ["line", "L", "S", "circle"]
    for k in range(count):
        shape, speed = shapes[k % 4], (1.3, 3.0)[(k // 4) % 2]
        t = np.linspace(0.0, seconds, 26)
        s = speed * t
        if shape == "line":
            angle = rng.uniform(-0.6, 0.6)
            xz = np.stack([s * np.sin(angle), s * np.cos(angle)], axis=-1)
        elif shape == "L":
            half = s[-1] / 2
            sign = rng.choice([-1, 1])
            xz = np.where(s[:, None] <= half, np.stack([0 * s, s], -1), np.stack([sign * (s - half), 0 * s + half], -1))
        elif shape == "S":
            amplitude = rng.uniform(0.3, 0.8)
            z = s * 0.9
            xz = np.stack([amplitude * np.sin(2 * np.pi * z / max(z[-1], 1e-6)), z], -1)
        else:
            radius = rng.uniform(1.0, 3.0)
            sign = rng.choice([-1, 1])
            phi = s / radius
            xz = np.stack([sign * radius * (1 - np.cos(phi)), radius * np.sin(phi)], -1)
        points = np.column_stack([t, xz])
        assert (np.linalg.norm(np.diff(points[:, 1:], axis=0), axis=1) / np.diff(t)).max() <= SPRINT_SPEED
        out.append((shape, speed, points))
    return out


def bench_paths(pipe, clips, count: int, rng) -> dict:
    rows: dict[str, list] = {"mean_m": [], "max_m": [], "skating": [], "cost": []}
    per_shape: dict[str, list] = {}
    for k, (shape, speed, points) in enumerate(make_paths(count, rng)):
        prompt = "a person walks forward" if speed < 2 else "a person runs forward"
        started = time.perf_counter()
        m = pipe(prompt, seconds=5.0, seed=k, path=points.tolist())[0]
        constrained = time.perf_counter() - started
        started = time.perf_counter()
        pipe(prompt, seconds=5.0, seed=k)
        rows["cost"].append(constrained / (time.perf_counter() - started))
        rows["mean_m"].append(m.meta["path_error"]["mean_m"])
        rows["max_m"].append(m.meta["path_error"]["max_m"])
        rows["skating"].append(foot_skating(m.joints, FPS))
        per_shape.setdefault(f"{shape}@{speed}", []).append(m.meta["path_error"]["mean_m"])
    moving = [Motion(f).joints for name, f, c in clips if any(w in name for w in ("walk", "run", "dash"))]
    real = float(np.mean([foot_skating(j, FPS) for j in moving])) if moving else float("nan")
    return {"paths": len(rows["mean_m"]), "mean_m": summary(rows["mean_m"], 0.10), "max_m": summary(rows["max_m"], 0.25),
            "foot_skating_over_real_walks_runs": ratio(float(np.mean(rows["skating"])), real),
            "real_clips_for_skating": len(moving),
            "mean_m_by_shape": {k: round(float(np.mean(v)), 4) for k, v in per_shape.items()},
            "cost_over_unconstrained": summary(rows["cost"], 3.0)}  # fmt: skip


def bench_edits(pipe, clips) -> dict:
    outside, joins, legs, checks = [], [], [], {"wave": [], "raise": [], "punch": []}
    prompts = {"wave": "a person waves the right hand", "raise": "a person raises both hands", "punch": "a person punches"}
    for i, (name, features, caption) in enumerate(clips):
        source = Motion(features)
        if source.seconds < 3.0:
            continue
        m = pipe.edit(source, "a person jumps", start=1.0, end=2.5, seed=i)
        start, end = m.meta["generated"]
        kept = np.r_[0:start, end : source.num_frames]
        outside.append(1000 * float(np.abs(m.joints[kept] - source.joints[kept]).max()))
        joins.append(max(join_step(m.joints, start), join_step(m.joints, end)) / inner_p99(source.joints))
        kind = list(prompts)[i % 3]
        u = pipe.edit(source, prompts[kind], body="upper", seed=i)
        legs.append(1000 * float(np.abs(u.joints[:, LOWER] - source.joints[:, LOWER]).max()))
        j = u.joints
        if kind == "punch":
            checks[kind].append(bool(punch(j)))
        else:
            wrists = [21] if kind == "wave" else [20, 21]
            checks[kind].append(bool(((j[:, wrists, 1] > j[:, 15:16, 1]).all(axis=1)).sum() >= 10))
    return {"range_edits": len(outside), "outside_unchanged_mm": summary(outside, 0.1),
            "join_step_over_inner_p99": summary(joins, 1.5),
            "upper_body_legs_root_unchanged_mm": summary(legs, 0.1),
            "upper_body_checks_pass_rate": {k: round(float(np.mean(v)), 3) for k, v in checks.items() if v}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", default=None, help="pipeline folder (default: the bundled model)")
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--paths", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = MotionPipeline.from_pretrained(None if args.model in (None, "default") else args.model, device="cpu")
    clips = test_clips(args.data, args.clips)
    rng = np.random.default_rng(0)
    pipe("a person walks", seconds=2, seed=0)  # warm-up, so the first timing is not the model's first call
    started = time.time()
    result = {"model": args.model or "default", "data": str(args.data), "test_clips": len(clips)}
    result["inbetween"] = bench_inbetween(pipe, clips)
    result["keyframes"] = bench_keyframes(pipe, clips, rng)
    result["paths"] = bench_paths(pipe, clips, args.paths, rng)
    result["edits"] = bench_edits(pipe, clips)
    result["seconds"] = round(time.time() - started, 1)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
