"""Foot contact, foot-sliding removal, smoothing and floor alignment of 272 motions.

    fix_foot_sliding(features, fps=30.0) -> features      pin contacts + leg IK, consistent 272 out
    smooth_motion(features, window, polyorder=2)          Savitzky-Golay on rotations and root
    align_floor(features)                                 detected floor -> y = 0
    postprocess_features(features, PostprocessConfig())   the chain used by the CLI
    foot_contacts(joints, fps) / contact_metrics(...)     contact detection on its own
"""

from motionmillion.motion.contact import (
    CONTACT_JOINTS,
    CONTACT_NAMES,
    ContactConfig,
    contact_metrics,
    contact_runs,
    detect_floor,
    foot_contacts,
)
from motionmillion.postprocess.pipeline import PostprocessConfig, postprocess_features
from motionmillion.postprocess.sliding import MIN_FRAMES, PostprocessWarning, SlidingConfig, fix_foot_sliding
from motionmillion.postprocess.smoothing import SmoothingWindowError, align_floor, check_window, smooth_motion

__all__ = [
    "CONTACT_JOINTS", "CONTACT_NAMES", "MIN_FRAMES", "ContactConfig", "PostprocessConfig", "PostprocessWarning",
    "SlidingConfig", "SmoothingWindowError", "align_floor", "check_window", "contact_metrics", "contact_runs",
    "detect_floor", "fix_foot_sliding", "foot_contacts", "postprocess_features", "smooth_motion",
]  # fmt: skip
