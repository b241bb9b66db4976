"""The clean-up chain used by the CLI, ``generate --fix-feet`` and the pipeline option."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from motionmillion.motion import validate_features
from motionmillion.motion.skeleton import FPS
from motionmillion.postprocess.sliding import SlidingConfig, fix_foot_sliding
from motionmillion.postprocess.smoothing import align_floor, check_window, smooth_motion


@dataclass(frozen=True)
class PostprocessConfig:
    fix_feet: bool = True
    window: int | None = None  # Savitzky-Golay window in frames (odd); None = no smoothing
    polyorder: int = 2
    align_floor: bool = False
    sliding: SlidingConfig = field(default_factory=SlidingConfig)

    def __post_init__(self) -> None:
        if self.window is not None:
            check_window(self.window, self.polyorder)


def postprocess_features(
    features: np.ndarray, config: PostprocessConfig = PostprocessConfig(), fps: float = FPS, source: str = "motion"
) -> np.ndarray:
    """Smooth (optional), remove foot sliding (default), align the floor (optional): (T, 272) -> (T, 272).

    Smoothing runs first so it cannot blur the pinned contacts; floor alignment runs last.
    """
    features = validate_features(features, source)
    if config.window is not None:
        features = smooth_motion(features, config.window, config.polyorder, source=source)
    if config.fix_feet:
        features = fix_foot_sliding(features, fps=fps, config=config.sliding, source=source)
    if config.align_floor:
        features = align_floor(features, config.sliding.contact, source=source)
    return features
