"""How often generated motions hover above the floor, before and after the pipeline's guard; one JSON.

    OMP_NUM_THREADS=1 .venv/bin/python bench/hovering.py [--model default] [--seeds 3] [--seconds 4]

Prompts: the 22 plain content descriptions and the 28 paraphrases of assets/eval (50), plus 8 jump
prompts. Hovering = the lowest foot joint above 10 cm for more than 0.7 s
(:func:`motionmillion.postprocess.grounding.hover_runs`); the pipeline's last stage lowers such stretches
(``meta["grounded"]``); here the model's motions are taken before it and the guard applied after, to
count both and the foot skating it adds (feet put back on the floor can slide). "airborne" = a jump prompt's motion has both feet off the floor (lowest foot
joint more than 5 cm above its contact height) for at least 4 frames: the guard must not flatten jumps.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from motionmillion import MotionPipeline
from motionmillion.evaluation.physical import foot_skating
from motionmillion.motion.representation import decode_joints
from motionmillion.postprocess.grounding import floor_gap, hover_runs

EVAL = Path(__file__).resolve().parents[1] / "src/motionmillion/assets/eval"
JUMPS = ["a person jumps", "someone jumps up and down", "a person leaps over something", "a person jumps forward",
         "a person hops on one leg", "a person jumps high", "a person jumps in place twice", "a man jumps happily"]


def airborne(joints: np.ndarray) -> bool:
    off = floor_gap(joints) > 0.05
    run = best = 0
    for flag in off:
        run = run + 1 if flag else 0
        best = max(best, run)
    return best >= 4


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="default")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipe = MotionPipeline.from_pretrained(None if args.model == "default" else args.model, device="cpu")
    prompts = [json.loads(line)["prompt"] for name in ("content_descriptions.jsonl", "paraphrases.jsonl")
               for line in (EVAL / name).read_text(encoding="utf-8").splitlines() if line.strip()][:50]  # fmt: skip
    guard = pipe.ground
    pipe.ground = lambda features: (features, {})  # the motions as the model makes them; the guard applied below
    result = {}
    for label, group in (("prompts", prompts), ("jump_prompts", JUMPS)):
        before = after = air_after = 0
        lowered, skating_before, skating_after = [], [], []
        motions = pipe(group, seconds=args.seconds, num_samples=args.seeds, seed=0)
        for motion in motions:
            features, meta = guard(motion.features)
            joints = decode_joints(features)
            before += bool(meta)
            after += bool(hover_runs(joints, motion.fps))
            lowered += [entry["lowered_m"] for entry in meta.get("grounded", [])]
            skating_before.append(foot_skating(motion.joints, motion.fps))
            skating_after.append(foot_skating(joints, motion.fps))
            if label == "jump_prompts":
                air_after += airborne(joints)
        result[label] = {"motions": len(motions), "hovering_before_guard": before, "hovering_after_guard": after,
                         "largest_lowering_m": round(max(lowered), 3) if lowered else 0.0,
                         "foot_skating_m_per_s_before_guard": round(float(np.mean(skating_before)), 4),
                         "foot_skating_m_per_s_after_guard": round(float(np.mean(skating_after)), 4)}  # fmt: skip
        if label == "jump_prompts":
            result[label]["airborne_after_guard"] = air_after
    result["settings"] = {"seconds": args.seconds, "seeds": args.seeds, "prompts": len(prompts), "model": args.model}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
