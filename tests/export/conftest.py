"""Fixtures of the export tests: real clips and generated motions (see export_readers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))  # export_readers.py, export_measure.py beside the tests
from export_readers import GENERATED, MORE_GENERATED, REAL_CLIPS  # noqa: E402

from motionmillion.motion import Motion  # noqa: E402


@pytest.fixture(scope="session")
def real_motions() -> dict[str, Motion]:
    return {name: Motion.load(path, source_fps=fps, text=name) for name, (path, fps) in REAL_CLIPS.items()}


@pytest.fixture(scope="session")
def generated_motions() -> dict[str, Motion]:
    return {name: Motion(np.load(path).astype(np.float64), text=name) for name, path in GENERATED.items()}


@pytest.fixture(scope="session")
def more_generated_motions() -> dict[str, Motion]:
    return {name: Motion(np.load(path).astype(np.float64), text=name) for name, path in MORE_GENERATED.items()}
