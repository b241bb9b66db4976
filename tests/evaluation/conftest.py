"""Synthetic clips in memory: 4 kinds of motion, each with its own captions, clearly separable."""

import numpy as np
import pytest

from motionmillion.evaluation.train import ClipSet
from motionmillion.motion.normalization import Normalizer

KINDS = {
    "walk": ["a person walks forward", "someone strolls ahead"],
    "wave": ["a person waves the right hand", "someone says goodbye with a hand"],
    "kick": ["a person kicks with the right leg", "someone kicks forward"],
    "bow": ["a person bows politely", "someone bends forward in a bow"],
}


def synthetic_clips(num_per_kind: int, seed: int, prefix: str) -> ClipSet:
    rng = np.random.default_rng(seed)
    names, motions, captions = [], [], []
    for k, (kind, caps) in enumerate(KINDS.items()):
        signature = np.random.default_rng(100 + k).normal(size=272)  # same across splits
        for i in range(num_per_kind):
            length = int(rng.integers(40, 120))
            t = np.linspace(0, 1, length)[:, None]
            motion = signature[None] * np.sin(2 * np.pi * (k + 1) * t) + 0.3 * rng.normal(size=(length, 272))
            names.append(f"{prefix}/dataset-1_{kind}_style{i % 3}_{i:03d}")
            motions.append(motion.astype(np.float32))
            captions.append(list(caps))
    return ClipSet(names, motions, captions)


@pytest.fixture(scope="session")
def synthetic_splits():
    return {"train": synthetic_clips(16, 0, "syn"), "val": synthetic_clips(8, 1, "syn"), "test": synthetic_clips(10, 2, "syn")}


@pytest.fixture(scope="session")
def identity_normalizer():
    return Normalizer(np.zeros(272), np.ones(272))
