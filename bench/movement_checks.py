"""Benchmark: does a generated movement do what its name says? Kinematic checks, beside real clips.

    python bench/movement_checks.py [--model PIPELINE] [--data DATASET] [--samples 10] [--threads 1]

The evaluator says which known movement a motion is closest to; these checks look at the body itself
(issue 15: "does a kick lift a foot above the knee, does a bow bend the spine forward"):

    kick      a foot rises above the other leg's knee while 0.3 m or more in front of the pelvis
    bow       the spine (pelvis -> neck) tilts more than 30 degrees towards the facing direction
    punch     a wrist reaches 0.45 m in front of the pelvis, in the facing direction
    jump      both feet are 20 cm or more above the floor in the same frame

Each check runs on ``--samples`` generations of a few prompts per movement and, with ``--data``, on the
dataset's real clips of that movement (their content label) and of other movements, which says whether
the check is fair: what real clips of the movement fail, or other movements pass, is weak evidence.
(A dribbling check on wrist bounces was tried and dropped: walking arm swings passed it as often as
real dribbling; dribbling is left to the evaluator.) Prints one JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from motionmillion.motion.skeleton import JOINT_NAMES  # noqa: E402

PELVIS, L_HIP, R_HIP, L_KNEE, R_KNEE, NECK, L_FOOT, R_FOOT, L_WRIST, R_WRIST = (JOINT_NAMES.index(name) for name in (
    "pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "neck", "left_foot", "right_foot", "left_wrist",
    "right_wrist"))  # fmt: skip
PROMPTS = {
    "kick": ["a person kicks with the right leg", "a person kicks", "someone kicks forward with the left foot"],
    "bow": ["a person bows", "someone bows politely to greet"],
    "punch": ["a person punches forward", "someone throws a punch with the right hand"],
    "jump": ["a person jumps", "someone jumps up in place", "a person jumps forward"],
}
# Labels of the real clips each check is tried on (content labels of the import records).
REAL_CONTENTS = {"kick": ["kick"], "bow": ["bow"], "punch": ["punch"], "jump": ["jump"]}
OTHER_CONTENTS = ["walk", "run", "dash", "wave-right", "raise-up-both", "ballet", "dance"]  # false-positive check


def facing(joints: np.ndarray) -> np.ndarray:
    """(T, 3) unit horizontal facing direction from the hips (left hip - right hip, turned about +Y)."""
    across = joints[:, L_HIP] - joints[:, R_HIP]
    forward = np.stack([-across[:, 2], np.zeros(len(across)), across[:, 0]], axis=-1)  # up x across
    return forward / np.maximum(np.linalg.norm(forward, axis=-1, keepdims=True), 1e-9)


def kick(joints: np.ndarray) -> bool:
    # Real kicks reach +0.55 m on this measure; walking, running, waving, dancing: 95% below -0.26 m.
    forward = facing(joints)
    for foot, other_knee in ((L_FOOT, R_KNEE), (R_FOOT, L_KNEE)):
        up = joints[:, foot, 1] - joints[:, other_knee, 1]
        ahead = np.einsum("ti,ti->t", joints[:, foot] - joints[:, PELVIS], forward)
        if np.minimum(up, ahead - 0.3).max() > 0:
            return True
    return False


def bow(joints: np.ndarray) -> bool:
    spine = joints[:, NECK] - joints[:, PELVIS]
    forward_lean = np.einsum("ti,ti->t", spine, facing(joints))
    angle = np.degrees(np.arctan2(forward_lean, spine[:, 1]))
    return bool(angle.max() > 30)


def punch(joints: np.ndarray) -> bool:
    ahead = np.stack([np.einsum("ti,ti->t", joints[:, w] - joints[:, PELVIS], facing(joints)) for w in (L_WRIST, R_WRIST)])
    return bool(ahead.max() > 0.45)


def jump(joints: np.ndarray) -> bool:
    floor = np.percentile(joints[:, [L_FOOT, R_FOOT], 1], 5)
    both_up = np.minimum(joints[:, L_FOOT, 1], joints[:, R_FOOT, 1]) - floor
    return bool(both_up.max() > 0.20)  # real jumps 0.27-0.50 m; other movements: 95% below 0.13 m


CHECKS = {"kick": kick, "bow": bow, "punch": punch, "jump": jump}


def real_clips(data: Path, contents: list[str], limit: int = 40, seed: int = 0) -> list[np.ndarray]:
    from motionmillion.data.records import clip_labels
    from motionmillion.data.layout import MotionDataset
    from motionmillion.motion import decode_joints

    dataset = MotionDataset(data)
    labels = clip_labels(data)
    names = sorted(n for n, label in labels.items() if label.content in contents and not label.mirrored)
    names = [str(n) for n in np.random.default_rng(seed).permutation(names)[:limit]]  # a fair mix of sources
    return [decode_joints(dataset.motion(n).astype(np.float64)) for n in names]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="pipeline folder (default: the bundled model)")
    parser.add_argument("--data", type=Path, default=None, help="dataset whose real clips the checks are tried on")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from motionmillion import MotionPipeline

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    pipe = MotionPipeline.from_pretrained(args.model) if args.model else MotionPipeline.from_pretrained()
    report: dict = {"model": args.model or "bundled", "samples_per_prompt": args.samples, "checks": {}}
    for movement, prompts in PROMPTS.items():
        check = CHECKS[movement]
        entry: dict = {"prompts": {}}
        passed = total = 0
        for prompt in prompts:
            results = []
            for seed in range(args.samples):
                motion = pipe(prompt, seed=seed)
                motion = motion[0] if isinstance(motion, list) else motion
                results.append(check(motion.joints))
            entry["prompts"][prompt] = f"{sum(results)}/{len(results)}"
            passed, total = passed + sum(results), total + len(results)
        entry["generated_pass_rate"] = round(passed / total, 3)
        if args.data is not None:
            real = [check(joints) for joints in real_clips(args.data, REAL_CONTENTS[movement])]
            entry["real_pass_rate"] = round(float(np.mean(real)), 3) if real else None
            entry["real_clips"] = len(real)
            others = [check(joints) for joints in real_clips(args.data, [c for c in OTHER_CONTENTS if c not in REAL_CONTENTS[movement]], limit=200)]
            entry["other_real_movements_pass_rate"] = round(float(np.mean(others)), 3) if others else None
        report["checks"][movement] = entry
    report["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
