"""Does a code change keep the bundled model's motions? Runs every generation path and saves or compares them.

    .venv/bin/python bench/same_tokens.py --save OLD.npz           # in a worktree of the previous code
    .venv/bin/python bench/same_tokens.py --save NEW.npz --compare OLD.npz

20 prompts x 5 seeds through each path: a single motion (4 s), a timeline (3 s + 2 s), a continuation
(2 s after a fixed 3 s motion) and a stream (4 s, chunks joined). Equal features mean equal tokens (the
decoder is deterministic); the JSON says how many motions differ per path and by how much, and how many
of those the hovering guard lowered (a post-process after the tokens: streams are never lowered).
Only the public API is used, so the same script runs on old and new code.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

PROMPTS = [
    "a person walks forward", "a person runs in a circle", "someone jumps up and down", "a person bows politely",
    "a person waves the right hand", "a person raises both hands", "a person punches with the left fist",
    "a person turns around", "a person walks backwards", "a person dances happily", "a person climbs up",
    "someone walks forward sadly", "a person swings a sword", "a person does ballet", "a person kicks",
    "an old man walks slowly", "a person sneaks forward", "a person waves goodbye with both hands",
    "a person jogs to the left", "a person stretches the arms",
]
SEEDS = [0, 1, 2, 3, 4]


def _not_heights() -> np.ndarray:
    from motionmillion.motion.representation import FEATURE_DIM, POSITIONS, VELOCITIES

    heights = np.r_[POSITIONS.start + 1 : POSITIONS.stop : 3, VELOCITIES.start + 1 : VELOCITIES.stop : 3]
    return np.setdiff1d(np.arange(FEATURE_DIM), heights)


NOT_HEIGHTS = _not_heights()  # every feature column but the joints' heights and vertical velocities


def run_all() -> dict[str, np.ndarray]:
    from motionmillion import MotionPipeline

    torch.set_num_threads(1)
    pipe = MotionPipeline.from_pretrained(device="cpu")
    prefix = pipe("a person walks forward", seconds=3.0, seed=123)[0]
    out = {}
    for i, prompt in enumerate(PROMPTS):
        for seed in SEEDS:
            key = f"{i:02d}_{seed}"
            nxt = PROMPTS[(i + 1) % len(PROMPTS)]
            for path, motion in (("single", pipe(prompt, seconds=4.0, seed=seed)[0]),
                                 ("timeline", pipe.compose([(prompt, 3.0), (nxt, 2.0)], seed=seed)),
                                 ("continuation", pipe(prompt, seconds=2.0, seed=seed, prefix=prefix)[0])):  # fmt: skip
                out[f"{path}/{key}"] = motion.features
                if motion.meta.get("grounded"):  # lowered by the hovering guard (code after session 7)
                    out[f"grounded/{path}/{key}"] = np.array(True)
            chunks = [c.features for c in pipe.stream(prompt, seconds=4.0, seed=seed)]
            out[f"stream/{key}"] = np.concatenate(chunks)
    return out


def compare(new: dict, old: dict) -> dict:
    report = {}
    for path in ("single", "timeline", "continuation", "stream"):
        keys = sorted(k for k in old if k.startswith(path + "/"))
        differ = [k for k in keys if k not in new or new[k].shape != old[k].shape
                  or np.abs(new[k] - old[k]).max() > 1e-4]  # fmt: skip
        worst = max((float(np.abs(new[k] - old[k]).max()) for k in keys if k in new and new[k].shape == old[k].shape),
                    default=0.0)  # fmt: skip
        grounded = [k for k in differ if f"grounded/{k}" in new]
        # The guard only lowers a motion: its tokens are the same when nothing but heights differs.
        beyond_heights = [k for k in differ if k in new and new[k].shape == old[k].shape
                          and np.abs(new[k][:, NOT_HEIGHTS] - old[k][:, NOT_HEIGHTS]).max() > 1e-6]  # fmt: skip
        report[path] = {"motions": len(keys), "differ": len(differ), "differ_and_grounded_by_the_guard": len(grounded),
                        "differ_beyond_heights_or_length": len(beyond_heights) + sum(
                            k not in new or new[k].shape != old[k].shape for k in differ),
                        "max_abs_diff_of_same_shape": worst, "first_differing": differ[:5]}  # fmt: skip
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--save", required=True)
    parser.add_argument("--compare", default=None)
    args = parser.parse_args()
    out = run_all()
    np.savez_compressed(args.save, **out)
    result = {"saved": args.save, "motions": len(out)}
    if args.compare:
        old = dict(np.load(args.compare))
        result["compare"] = compare(out, old)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
