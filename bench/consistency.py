"""Is every output of a motion the same movement, and how does it compare with real capture? (prints JSON)

For generated motions (the 126 MotionMillion-Eval prompts and the paraphrase set, one sample each,
from a pipeline folder; and, as the evaluation does, one per real clip from its first caption at its
own length) and for real clips (a dataset split), per set:

- BVH vs joints: ``Motion.to_bvh`` read back with the project's reader (``load_bvh_joints``) against
  ``Motion.joints``, max and mean over all frames and joints (mm);
- video vs BVH: the joints ``Motion.render`` hands to the renderer against the BVH read back (mm);
- bone-length standard deviation over time, per bone (max over motions) and overall (mm);
- rotation-vs-position disagreement of the features (``motionmillion.motion.consistency.disagreement``);
- jitter (m/s^3), foot skating (m/s), skating ratio, floating and ground penetration (m), with the
  evaluation's physical metrics on ``Motion.joints``.

Each metric is printed per set beside the real clips'; the physical ones also as a ratio to real.

    python bench/consistency.py --data DATASET                       # bundled model + DATASET's test split
    python bench/consistency.py --data DATASET --model PIPE --features-dir OLD_272_DIR --save-generated DIR
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from motionmillion.evaluation.physical import physical_metrics
from motionmillion.motion import JOINT_NAMES, Motion
from motionmillion.motion.rig_mapping import load_bvh_joints
from motionmillion.motion.consistency import bone_length_std, disagreement

REPO = Path(__file__).resolve().parents[1]
EVAL_PROMPTS = REPO.parent / "shared/data/prompts/motionmillion_eval_prompts.txt"
PARAPHRASES = REPO / "src/motionmillion/assets/eval/paraphrases.jsonl"
# Compared with real capture as a ratio (the consistency figures of real clips are ~0).
PHYSICAL = ("jitter_m_s3", "foot_skating_m_s", "skating_ratio", "floating_m", "ground_penetration_m")


def video_joints(motion: Motion, path: Path) -> np.ndarray:
    """The joints ``Motion.render`` draws, captured at the renderer's door (no video is encoded)."""
    import motionmillion.render as render

    captured = {}
    original = render.render_motion
    render.render_motion = lambda joints, *args, **kwargs: captured.setdefault("joints", np.asarray(joints))
    try:
        motion.render(path)
    finally:
        render.render_motion = original
    return captured["joints"]


def measure(motion: Motion, folder: Path) -> dict:
    bvh = motion.to_bvh(folder / "motion.bvh")
    read, _ = load_bvh_joints(bvh, rig="smpl", unit_scale=1.0)
    joints = motion.joints
    bvh_error = np.linalg.norm(read - joints, axis=-1)
    video_error = np.linalg.norm(video_joints(motion, folder / "motion.mp4") - read, axis=-1)
    physical = physical_metrics(joints, motion.fps).to_dict()
    return {
        "bvh_vs_joints_max_mm": 1000 * float(bvh_error.max()),
        "bvh_vs_joints_mean_mm": 1000 * float(bvh_error.mean()),
        "video_vs_bvh_max_mm": 1000 * float(video_error.max()),
        "bone_std_mm": 1000 * bone_length_std(joints),
        "disagreement": disagreement(motion.features).to_dict(),
        **physical,
    }


def summarize(rows: list[dict]) -> dict:
    bone_std = np.stack([r["bone_std_mm"] for r in rows])  # (N, 21)
    mean = lambda key: float(np.mean([r[key] for r in rows]))  # noqa: E731
    return {
        "motions": len(rows),
        "bvh_vs_joints_max_mm": float(max(r["bvh_vs_joints_max_mm"] for r in rows)),
        "bvh_vs_joints_mean_mm": mean("bvh_vs_joints_mean_mm"),
        "video_vs_bvh_max_mm": float(max(r["video_vs_bvh_max_mm"] for r in rows)),
        "bone_length_std_max_mm": float(bone_std.max()),
        "bone_length_std_mean_mm": float(bone_std.mean()),
        "bone_length_std_per_bone_max_mm": {
            JOINT_NAMES[j + 1]: round(float(v), 3) for j, v in enumerate(bone_std.max(axis=0))
        },
        "disagreement_position_max_mm": 1000 * float(max(r["disagreement"]["position_max_m"] for r in rows)),
        "disagreement_position_mean_mm": 1000 * float(np.mean([r["disagreement"]["position_mean_m"] for r in rows])),
        "disagreement_bone_angle_max_deg": float(max(r["disagreement"]["bone_angle_max_deg"] for r in rows)),
        "disagreement_bone_angle_mean_deg": float(np.mean([r["disagreement"]["bone_angle_mean_deg"] for r in rows])),
        "jitter_m_s3": mean("jitter"),
        "foot_skating_m_s": mean("foot_skating"),
        "skating_ratio": mean("skating_ratio"),
        "floating_m": mean("floating"),
        "ground_penetration_m": mean("ground_penetration"),
    }


def run_set(motions: list[Motion]) -> dict:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for motion in motions:
            rows.append(measure(motion, Path(tmp)))
    return summarize(rows)


def load_prompts(limit: int | None) -> list[str]:
    prompts = [line.strip() for line in EVAL_PROMPTS.read_text(encoding="utf-8").splitlines() if line.strip()]
    prompts += [json.loads(line)["prompt"] for line in PARAPHRASES.read_text(encoding="utf-8").splitlines() if line.strip()]
    return prompts[:limit] if limit else prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True, help="dataset (MotionMillion layout) whose split gives the real clips")
    parser.add_argument("--split", default="test")
    parser.add_argument("--real-limit", type=int, default=200, help="real clips (evenly spread over the split)")
    parser.add_argument("--model", type=Path, default=None, help="pipeline folder (default: the bundled model)")
    parser.add_argument("--prompt-limit", type=int, default=None, help="only the first N prompts")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--features-dir", type=Path, action="append", default=[],
                        help="also measure the (T, 272) .npy files of a folder as they are (e.g. an older model's output)")  # fmt: skip
    parser.add_argument("--save-generated", type=Path, default=None, help="write the generated features here (.npy)")
    args = parser.parse_args()

    import torch

    from motionmillion import MotionPipeline
    from motionmillion.data.layout import MotionDataset

    torch.set_num_threads(1)
    dataset = MotionDataset(args.data)
    names = sorted(dataset.names(args.split))
    if len(names) > args.real_limit:
        names = [names[i] for i in np.linspace(0, len(names) - 1, args.real_limit).round().astype(int)]
    sets = {"real": run_set([Motion(dataset.motion(n)) for n in names])}

    pipe = MotionPipeline.from_pretrained(args.model)
    prompts = load_prompts(args.prompt_limit)
    start = time.perf_counter()
    generated = pipe(prompts, seed=args.seed)
    generate_seconds = time.perf_counter() - start
    if args.save_generated:
        from motionmillion.utils.io import atomic_save_npy

        for i, motion in enumerate(generated):
            atomic_save_npy(args.save_generated / f"{i:03d}.npy", motion.features)
    sets["generated"] = run_set(generated)
    # The evaluation's protocol: the split's own captions at the real clips' lengths (GT lengths).
    captions = [(dataset.texts(n) or [""])[0] for n in names]
    keep = [i for i, caption in enumerate(captions) if caption.strip()]
    lengths = [min(dataset.length(names[i]) / pipe.fps, pipe.max_seconds) for i in keep]
    sets["generated_split_captions_gt_lengths"] = run_set(pipe([captions[i] for i in keep], seconds=lengths, seed=args.seed))
    for folder in args.features_dir:
        files = sorted(folder.glob("*.npy"))
        sets[f"files:{folder}"] = run_set([Motion(np.load(f)) for f in files])

    real = sets["real"]
    vs_real = {
        name: {key: summary[key] / real[key] for key in PHYSICAL if real[key] > 0}
        for name, summary in sets.items() if name != "real"
    }  # fmt: skip
    report = {
        "model": str(args.model or "bundled default model"),
        "skeleton": "pipeline skeleton.json" if pipe.skeleton is not None else "each motion's own fit",
        "data": str(args.data),
        "split": args.split,
        "prompts": len(prompts),
        "generate_seconds": generate_seconds,
        "sets": sets,
        "ratio_to_real": vs_real,
    }
    json.dump(report, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
