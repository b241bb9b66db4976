"""A tiny dataset in the MotionMillion layout with a packed store, built from synthetic motions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from motionmillion.data.layout import write_clip, write_mean_std, write_split
from motionmillion.data.packed import write_packed
from motionmillion.motion import compute_mean_std, encode_272, rotations_from_positions
from motionmillion.motion.skeleton import TEMPLATE_REST_JOINTS


def synthetic_motion(num_frames: int, seed: int) -> np.ndarray:
    """A walking-like 272 motion: the rest pose swinging its limbs and drifting forward."""
    rng = np.random.default_rng(seed)
    t = np.arange(num_frames)[:, None, None] / 30.0
    phase = rng.uniform(0, 2 * np.pi, size=(1, 22, 3))
    amplitude = rng.uniform(0.0, 0.05, size=(1, 22, 3))
    joints = TEMPLATE_REST_JOINTS[None] + amplitude * np.sin(2 * np.pi * rng.uniform(0.5, 1.5) * t + phase)
    joints = joints + np.array([0.0, 0.0, 1.0])[None, None] * t * rng.uniform(0.2, 1.0)
    return encode_272(joints, rotations_from_positions(joints)).astype(np.float32)


def make_dataset(root: Path, lengths: dict[str, int], splits: dict[str, list[str]], nan_clips=()) -> Path:
    clips = {name: synthetic_motion(length, seed) for seed, (name, length) in enumerate(lengths.items())}
    for name, features in clips.items():
        write_clip(root, name, features, [f"a person moves ({name})"])
    write_mean_std(root, *compute_mean_std(clips.values()))
    for name in nan_clips:  # only in the packed store: the layout writer refuses NaN
        clips[name] = clips[name].copy()
        clips[name][3, 10] = np.nan
    for kind in ("tokenizer_96", "t2m_60_300"):
        for split, names in splits.items():
            write_split(root, kind, split, names)
        write_split(root, kind, "all", [n for names in splits.values() for n in names])
    names = sorted(clips)
    write_packed(root / "packed", names, [len(clips[n]) for n in names], (clips[n] for n in names))
    return root


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """12 train clips (one too short for a 16-frame window, one with a NaN), 3 val, 3 test."""
    root = tmp_path_factory.mktemp("tiny_dataset")
    lengths = {f"src/clip_{i:02d}": 40 + 7 * i for i in range(18)}
    lengths["src/clip_short"] = 10
    lengths["src/Mclip_00"] = 41  # odd length, a mirrored name
    train = [f"src/clip_{i:02d}" for i in range(11)] + ["src/clip_short", "src/Mclip_00"]
    splits = {"train": train, "val": [f"src/clip_{i:02d}" for i in (11, 12, 13)],
              "test": [f"src/clip_{i:02d}" for i in (14, 15, 16)]}
    return make_dataset(root, lengths, splits, nan_clips=["src/clip_10"])
