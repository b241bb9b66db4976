"""Temporal smoothing (Savitzky-Golay on rotations and root) and floor alignment of 272 features.

Smoothing filters the 6D rotations (then re-orthonormalises them) and the root trajectory, and
derives every position from the smoothed rotations by forward kinematics, so the output is as
consistent as its input. (The reference filters positions only and its default window 3 with
polyorder 3 crashes; here the window is checked up front with a clear message.)
"""

from __future__ import annotations

import warnings

import numpy as np

from motionmillion.motion import decode_joints, validate_features
from motionmillion.motion.representation import POSITIONS
from motionmillion.motion.rotations import matrix_to_6d, sixd_to_matrix
from motionmillion.motion.contact import DEFAULT_CONTACT, ContactConfig, detect_floor
from motionmillion.motion.consistency import consistent_skeleton, encode_consistent
from motionmillion.postprocess.sliding import PostprocessWarning


class SmoothingWindowError(ValueError):
    """A Savitzky-Golay window / polynomial order pair that cannot smooth."""


def check_window(window: int, polyorder: int = 2) -> None:
    """Raise :class:`SmoothingWindowError` unless ``window`` / ``polyorder`` actually smooth.

    The window must be an odd integer (centred filter) and larger than ``polyorder + 1``: with
    ``window == polyorder + 1`` the polynomial fits every window exactly and nothing changes, with
    ``window <= polyorder`` the filter is undefined (the reference's default, 3 with order 3).
    """
    if isinstance(window, bool) or not isinstance(window, int | np.integer):
        raise SmoothingWindowError(f"smoothing window must be an integer number of frames, got {window!r}")
    if isinstance(polyorder, bool) or not isinstance(polyorder, int | np.integer) or polyorder < 0:
        raise SmoothingWindowError(f"smoothing polyorder must be an integer >= 0, got {polyorder!r}")
    if window % 2 == 0:
        raise SmoothingWindowError(f"smoothing window must be odd (centred filter), got {window}; try {window + 1}")
    minimum = polyorder + 2 if polyorder % 2 else polyorder + 3  # smallest odd window > polyorder + 1
    if window < minimum:
        raise SmoothingWindowError(
            f"smoothing window {window} is too small for polyorder {polyorder}: it must be odd and >= {minimum} "
            "(a window of polyorder + 1 or less leaves the motion unchanged or is undefined)"
        )


def smooth_motion(features: np.ndarray, window: int, polyorder: int = 2, source: str = "motion") -> np.ndarray:
    """Savitzky-Golay smoothing of a 272 motion's rotations and root trajectory; returns new features.

    A motion shorter than ``window`` comes back unchanged with a :class:`PostprocessWarning`.
    """
    from scipy.signal import savgol_filter
    check_window(window, polyorder)
    features = validate_features(features, source)
    if len(features) < window:
        warnings.warn(
            f"{source}: {len(features)} frames is shorter than the smoothing window {window}; not smoothed",
            PostprocessWarning,
            stacklevel=2,
        )
        return features.copy()
    rotations, root, offsets = consistent_skeleton(features)
    sixd = savgol_filter(matrix_to_6d(rotations), window, polyorder, axis=0, mode="interp")
    smoothed_rotations = sixd_to_matrix(sixd)
    smoothed_root = savgol_filter(root, window, polyorder, axis=0, mode="interp")
    return encode_consistent(smoothed_rotations, smoothed_root, offsets).astype(features.dtype, copy=False)


def align_floor(features: np.ndarray, config: ContactConfig = DEFAULT_CONTACT, source: str = "motion") -> np.ndarray:
    """Shift a 272 motion vertically so the floor its feet stand on (see ``detect_floor``) is y = 0.

    Only heights change (one constant for all joints and frames): velocities and rotations stay
    valid. Where the feet never touch a floor, the lowest joint is put at y = 0.
    """
    features = validate_features(features, source)
    floor = detect_floor(decode_joints(features), config)
    out = features.copy()
    out[:, POSITIONS.start + 1 : POSITIONS.stop : 3] -= floor
    return out
