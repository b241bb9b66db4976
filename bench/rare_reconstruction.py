"""Benchmark: can a tokenizer represent the rare movements? Per-content reconstruction of real clips.

    python bench/rare_reconstruction.py --data DATASET [--model TOKENIZER ...] [--threads 1]

For each tokenizer (default: the bundled one) and each content with few takes (kick, punch, call, slash,
dash, guide) plus dribbling: the pelvis-aligned MPJPE of the content's clips after encode + decode
(``tokenizer.evaluate.clip_errors``), how high a kick's foot rises above the other knee (real: +0.6 m), and
the range of a dribbling wrist's height relative to the pelvis (5th-95th percentile). A movement the
tokenizer cannot represent cannot be generated, whatever the generator. Prints one JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from motionmillion.motion.skeleton import JOINT_NAMES  # noqa: E402

RARE = ("kick", "punch", "call", "slash", "dash", "guide", "dribble")
L_KNEE, R_KNEE, L_FOOT, R_FOOT, L_WRIST, R_WRIST, PELVIS = (JOINT_NAMES.index(n) for n in (
    "left_knee", "right_knee", "left_foot", "right_foot", "left_wrist", "right_wrist", "pelvis"))  # fmt: skip


def foot_over_other_knee(joints: np.ndarray) -> float:
    return float(max((joints[:, L_FOOT, 1] - joints[:, R_KNEE, 1]).max(), (joints[:, R_FOOT, 1] - joints[:, L_KNEE, 1]).max()))


def wrist_bounce(joints: np.ndarray) -> float:
    heights = joints[:, [L_WRIST, R_WRIST], 1] - joints[:, [PELVIS], 1]
    return float((np.percentile(heights, 95, axis=0) - np.percentile(heights, 5, axis=0)).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--model", action="append", default=None, help="tokenizer folder (repeatable; default: bundled)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()

    import torch

    from motionmillion.data.records import clip_labels
    from motionmillion.data.layout import MotionDataset
    from motionmillion.motion import decode_joints
    from motionmillion.pipeline import default_model_path
    from motionmillion.tokenizer.evaluate import clip_errors
    from motionmillion.tokenizer.model import MotionTokenizer

    torch.set_num_threads(args.threads)
    dataset = MotionDataset(args.data)
    normalizer = dataset.normalizer()
    labels = clip_labels(args.data)
    clips = {c: sorted(n for n, label in labels.items() if label.content == c and not label.mirrored) for c in RARE}
    report: dict = {"data": str(args.data), "clips": {c: len(names) for c, names in clips.items()}, "tokenizers": {}}
    for model in args.model or [str(default_model_path() / "tokenizer")]:
        tokenizer = MotionTokenizer.from_pretrained(model)
        fpt = tokenizer.frames_per_token
        result: dict = {}
        for content, names in clips.items():
            errors, measure_real, measure_decoded = [], [], []
            for name in names:
                features = dataset.motion(name).astype(np.float64)
                features = features[: len(features) - len(features) % fpt]
                x = torch.tensor(normalizer.normalize(features)[None], dtype=torch.float32)
                with torch.no_grad():
                    decoded = normalizer.denormalize(tokenizer(x)[0][0].numpy().astype(np.float64))
                real_joints, decoded_joints = decode_joints(features), decode_joints(decoded)
                errors.append(clip_errors(decoded_joints, real_joints)["mpjpe_mm"])
                measure = foot_over_other_knee if content == "kick" else wrist_bounce if content == "dribble" else None
                if measure is not None:
                    measure_real.append(measure(real_joints))
                    measure_decoded.append(measure(decoded_joints))
            entry = {"mpjpe_mm": round(float(np.mean(errors)), 1)} if errors else {}
            if measure_real:
                what = "foot_over_other_knee_m" if content == "kick" else "wrist_bounce_m"
                entry[what] = {"real": round(float(np.median(measure_real)), 2), "decoded": round(float(np.median(measure_decoded)), 2)}
            result[content] = entry
        report["tokenizers"][model] = result
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
