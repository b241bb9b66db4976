import os
from pathlib import Path

import numpy as np
import pytest

# Tests never touch the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

TESTS_DIR = Path(__file__).parent
FIXTURE_DIR = TESTS_DIR / "fixtures"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
