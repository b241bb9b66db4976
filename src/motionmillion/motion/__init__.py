"""The motion library: skeleton, rotations, the 272 representation, kinematics, normalisation, BVH.

Numpy only (no torch at import time).

Source of truth for a generated motion: its root trajectory and rotations, posed on one rigid
skeleton (the training data's, ``skeleton.json`` in a pipeline folder). The pipeline re-derives the
joint positions of the 272 features from them (:func:`make_consistent`), so features, joints,
rotations, BVH and video are one movement; real clips are consistent already and stay as they are.
Kinematic consistency lives in ``consistency.py``, foot contact in ``contact.py``.
"""

from motionmillion.motion.consistency import disagreement, make_consistent
from motionmillion.motion.kinematics import (
    align_rotations_to_positions,
    fit_offsets,
    forward_kinematics,
    global_to_local,
    local_to_global,
    rotations_from_positions,
)
from motionmillion.motion.motion import Motion, MotionFileError
from motionmillion.motion.normalization import Normalizer, compute_mean_std
from motionmillion.motion.representation import (
    FEATURE_DIM,
    InvalidMotionError,
    canonicalize,
    decode_joints,
    decode_rotations,
    encode_272,
    mirror_272,
    validate_features,
)
from motionmillion.motion.skeleton import FPS, JOINT_NAMES, KINEMATIC_CHAINS, NUM_JOINTS, PARENTS

__all__ = [
    "FEATURE_DIM", "FPS", "JOINT_NAMES", "KINEMATIC_CHAINS", "NUM_JOINTS", "PARENTS",
    "InvalidMotionError", "Motion", "MotionFileError", "Normalizer",
    "align_rotations_to_positions", "canonicalize", "compute_mean_std", "decode_joints", "decode_rotations",
    "disagreement", "encode_272", "make_consistent",
    "fit_offsets", "forward_kinematics", "global_to_local", "local_to_global", "mirror_272",
    "rotations_from_positions", "validate_features",
]  # fmt: skip
