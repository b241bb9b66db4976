from pathlib import Path

import numpy as np
import pytest

FIXTURE_BVH = Path(__file__).parent.parent / "fixtures" / "bvh"


@pytest.fixture
def random_clip():
    """A (T, 272) float32 array: the layout and the packed store do not care what the numbers mean."""

    def make(frames: int, seed: int = 0) -> np.ndarray:
        return np.random.default_rng(seed).normal(size=(frames, 272)).astype(np.float32)

    return make
